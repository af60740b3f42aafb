// kvserver configuration: the shipped files parse, defaults match, and every bad input names
// its key and file.
#include <gtest/gtest.h>

#include "config/memnode_config.h"
#include "config/server_config.h"

namespace fm::config {
namespace {

std::string source_file(const std::string& rel) { return std::string(FM_SOURCE_ROOT) + "/" + rel; }

std::string error_of(std::string_view text) {
  auto r = parse_server_config(text, "test.toml");
  EXPECT_FALSE(r.is_ok()) << "accepted: " << text;
  return r.is_ok() ? "" : r.status().message();
}

TEST(ServerConfig, EmbeddedDefaultFileEqualsBuiltInDefaults) {
  auto loaded = load_server_config(source_file("config/kvserver.toml"));
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().message();
  EXPECT_EQ(to_toml(*loaded), to_toml(ServerConfig{}));
}

TEST(ServerConfig, VethExampleParses) {
  auto loaded = load_server_config(source_file("config/kvserver-veth.toml"));
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().message();
  EXPECT_EQ(loaded->port.vdev.rfind("net_af_packet0", 0), 0u);
  EXPECT_EQ(loaded->net.ip.to_string(), "10.78.0.1");
}

TEST(ServerConfig, EmptyFileGivesDefaults) {
  auto r = parse_server_config("", "empty.toml");
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(to_toml(*r), to_toml(ServerConfig{}));
}

TEST(ServerConfig, EffectiveConfigRoundTrips) {
  auto r = parse_server_config(
      "[eal]\nlcores = [2, 3]\nhugepages = \"off\"\n[net]\nip = \"192.0.2.7\"\n"
      "neighbors = [{ ip = \"192.0.2.8\", mac = \"02:00:00:00:00:08\" }]\n[kv]\nmemory_mb = 32\n",
      "a.toml");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  auto again = parse_server_config(to_toml(*r), "b.toml");
  ASSERT_TRUE(again.is_ok()) << again.status().message();
  EXPECT_EQ(to_toml(*again), to_toml(*r));
  EXPECT_EQ(again->net.neighbors.size(), 1u);
  EXPECT_EQ(again->eal.lcores, (std::vector<uint32_t>{2, 3}));
}

// Found by tests/fuzz (regressions/config/to_toml_control_char): a string holding a control
// character was written raw, and the effective config did not parse back.
TEST(ServerConfig, ControlCharactersInStringsRoundTrip) {
  auto r = parse_server_config("[eal]\nfile_prefix = \"a\\u0019b\\u007f\\\"c\\\\\"\n", "a.toml");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->eal.file_prefix, std::string("a\x19" "b\x7f" "\"c\\"));
  auto again = parse_server_config(to_toml(*r), "b.toml");
  ASSERT_TRUE(again.is_ok()) << again.status().message() << "\n" << to_toml(*r);
  EXPECT_EQ(again->eal.file_prefix, r->eal.file_prefix);
}

// Found by tests/fuzz (regressions/config/to_toml_unquoted_paths): paging.memnode, the verbs
// device names and memnode.listen were printed between bare quotes, so a backslash or a quote in
// them made the effective config unparseable.
TEST(ServerConfig, EveryPrintedStringIsQuoted) {
  auto r = parse_server_config(
      "[paging]\nmemnode = \"unix:/tmp/a\\\\b\\\"c\"\n[paging.verbs]\ndevice = \"x\\\\V\"\n",
      "a.toml");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->paging.memnode, "unix:/tmp/a\\b\"c");
  EXPECT_EQ(r->paging.verbs.device, "x\\V");
  auto again = parse_server_config(to_toml(*r), "b.toml");
  ASSERT_TRUE(again.is_ok()) << again.status().message() << "\n" << to_toml(*r);
  EXPECT_EQ(again->paging.memnode, r->paging.memnode);
  EXPECT_EQ(again->paging.verbs.device, r->paging.verbs.device);

  auto m = parse_memnode_config(
      "[memnode]\nlisten = \"unix:/tmp/\\\\m\"\n[verbs]\ndevice = \"q\\\"\"\n", "m.toml");
  ASSERT_TRUE(m.is_ok()) << m.status().message();
  auto m2 = parse_memnode_config(to_toml(*m), "m2.toml");
  ASSERT_TRUE(m2.is_ok()) << m2.status().message() << "\n" << to_toml(*m);
  EXPECT_EQ(m2->listen, "unix:/tmp/\\m");
  EXPECT_EQ(m2->verbs.device, "q\"");
}

TEST(ServerConfig, UnknownKeysAreNamed) {
  EXPECT_EQ(error_of("[eal]\nlcoress = [1]\n"),
            "test.toml: eal.lcoress: unknown key (see docs/config.md for the keys this table takes)");
  EXPECT_NE(error_of("[nope]\nx = 1\n").find("test.toml: nope: unknown key"), std::string::npos);
  EXPECT_NE(error_of("toplevel = 1\n").find("test.toml: toplevel: unknown key"), std::string::npos);
}

TEST(ServerConfig, WrongTypesAreNamed) {
  EXPECT_EQ(error_of("[eal]\nmemory_mb = \"lots\"\n"),
            "test.toml: eal.memory_mb: expected an integer, got a string");
  EXPECT_EQ(error_of("[dataplane]\nidle_backoff = 1\n"),
            "test.toml: dataplane.idle_backoff: expected true or false, got an integer");
  EXPECT_EQ(error_of("eal = 3\n"), "test.toml: eal: expected a table, got an integer");
  EXPECT_EQ(error_of("[eal]\nlcores = [1, \"2\"]\n"),
            "test.toml: eal.lcores: expected an array of integers, found an element of type a string");
}

TEST(ServerConfig, ImpossibleValuesAreNamed) {
  EXPECT_EQ(error_of("[eal]\nmemory_mb = 0\n"),
            "test.toml: eal.memory_mb: 0 is out of range [16, 1048576]");
  EXPECT_EQ(error_of("[net]\nudp_port = 70000\n"),
            "test.toml: net.udp_port: 70000 is out of range [1, 65535]");
  EXPECT_NE(error_of("[eal]\nhugepages = \"maybe\"\n").find("eal.hugepages: \"maybe\" is not one of"),
            std::string::npos);
  EXPECT_NE(error_of("[net]\nip = \"10.0.0.300\"\n").find("net.ip"), std::string::npos);
  EXPECT_NE(error_of("[net]\nmac = \"zz:00:00:00:00:00\"\n").find("net.mac"), std::string::npos);
  EXPECT_NE(error_of("[eal]\nlcores = []\n").find("eal.lcores: must name at least one lcore"),
            std::string::npos);
  EXPECT_NE(error_of("[eal]\nlcores = [1, 1]\n").find("listed twice"), std::string::npos);
  EXPECT_NE(error_of("[port]\nvdev = \"\"\n").find("port.vdev"), std::string::npos);
  EXPECT_NE(error_of("[net]\nneighbors = [{ ip = \"1.2.3.4\" , mac = \"bad\" }]\n")
                .find("net.neighbors[0].mac"),
            std::string::npos);
  EXPECT_NE(error_of("[log]\nlevel = \"loud\"\n").find("log.level"), std::string::npos);
  EXPECT_NE(error_of("[kv]\nmemory_mb = 0\n").find("kv.memory_mb"), std::string::npos);
}

TEST(ServerConfig, PagingAndSchedErrorsNameTheKey) {
  EXPECT_NE(error_of("[paging]\ntransport = \"infiniband\"\n").find("paging.transport: \"infiniband\" is not one of"),
            std::string::npos);
  EXPECT_NE(error_of("[paging]\nlocal_fraction = 0.0\n").find("paging.local_fraction"), std::string::npos);
  EXPECT_NE(error_of("[paging]\nmemnode = \"tcp:10.0.0.1:7000\"\n").find("paging.memnode: the emulated transport needs unix:"),
            std::string::npos);
  EXPECT_NE(error_of("[paging]\ntransport = \"verbs\"\n").find("paging.memnode: the verbs transport needs tcp:"),
            std::string::npos);
  EXPECT_NE(error_of("[paging.emulated]\nmax_outstanding = 0\n").find("paging.emulated.max_outstanding"),
            std::string::npos);
  EXPECT_NE(error_of("[paging.emulated]\nlink_gbps = -1\n").find("paging.emulated.link_gbps"), std::string::npos);
  EXPECT_NE(error_of("[paging.verbs]\nnope = 1\n").find("paging.verbs.nope: unknown key"), std::string::npos);
  EXPECT_NE(error_of("[sched]\nfaults = \"maybe\"\n").find("sched.faults"), std::string::npos);
  EXPECT_NE(error_of("[sched]\nmax_in_flight = 0\n").find("sched.max_in_flight"), std::string::npos);
}

TEST(MemnodeConfig, DefaultsFileAndErrors) {
  auto loaded = load_memnode_config(source_file("config/memnode.toml"));
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().message();
  EXPECT_EQ(to_toml(*loaded), to_toml(MemnodeConfig{}));
  auto bad = parse_memnode_config("[memnode]\npool_mb = 0\n", "m.toml");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("m.toml: memnode.pool_mb"), std::string::npos);
  bad = parse_memnode_config("[memnode]\ntransport = \"verbs\"\n", "m.toml");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("memnode.listen"), std::string::npos);
}

TEST(ServerConfig, KvCrossFieldRulesNameTheKey) {
  auto r = parse_server_config("[kv]\nitem_size_max = 4194304\nreply_buffer_kb = 64\n", "t.toml");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  Status st = kv::validate(r->store, r->protocol);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("kv."), std::string::npos) << st.message();
}

// One set of limits (kv::Limits): what the file accepts, the store accepts, at both edges.
TEST(ServerConfig, KvLimitsAreTheStoresLimits) {
  struct Case {
    const char* key;
    int64_t inside, outside;
    const char* extra;  // what the other rules need for `inside` to pass them
  };
  using L = kv::Limits;
  const Case cases[] = {
      {"item_size_max", L::kItemSizeMaxMin, L::kItemSizeMaxMin - 1, ""},
      // The largest item needs jumbo datagrams, a buffer that holds one reply and a slab of it.
      {"item_size_max", L::kItemSizeMaxMax, int64_t(L::kItemSizeMaxMax) + 1,
       "memory_mb = 1024\nreply_buffer_kb = 140000\nudp_max_payload = 65507\n"},
      {"hash_power", L::kHashPowerMax, L::kHashPowerMax + 1, ""},
      {"hash_power", L::kHashPowerMin, L::kHashPowerMin - 1, ""},
      {"hash_power_max", L::kHashPowerMax, L::kHashPowerMax + 1, ""},
      {"memory_mb", L::kMemoryMbMin, 0, ""},
      {"reply_buffer_kb", L::kReplyBufferKbMin, L::kReplyBufferKbMin - 1, ""},
      {"spin_ns", L::kSpinNsMax, int64_t(L::kSpinNsMax) + 1, ""},
  };
  for (const Case& c : cases) {
    const std::string extra = c.extra;
    const std::string in = "[kv]\n" + extra + c.key + " = " + std::to_string(c.inside) + "\n";
    auto r = parse_server_config(in, "t.toml");
    ASSERT_TRUE(r.is_ok()) << in << r.status().message();
    if (std::string(c.key) != "reply_buffer_kb") {
      Status st = kv::validate(r->store, r->protocol);
      EXPECT_TRUE(st.is_ok()) << in << st.message();
    }
    const std::string out = "[kv]\n" + extra + c.key + " = " + std::to_string(c.outside) + "\n";
    EXPECT_NE(error_of(out).find(std::string("kv.") + c.key), std::string::npos) << out;
  }
}

TEST(ServerConfig, SyntaxErrorsNameFileLineAndColumn) {
  const std::string e = error_of("[eal]\nmemory_mb = = 3\n");
  EXPECT_EQ(e.rfind("test.toml:2:", 0), 0u) << e;
}

TEST(ServerConfig, MissingFileIsNamed) {
  auto r = load_server_config("/nonexistent/kv.toml");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(), "cannot open config file '/nonexistent/kv.toml'");
}

// [net] source rules: prefix_len, allow, deny_source_ports.

TEST(ServerConfig, NetSourceRulesDefaults) {
  const ServerConfig c;
  EXPECT_EQ(c.net.prefix_len, 24);
  EXPECT_TRUE(c.net.allow.empty());  // the server's own subnet
  EXPECT_EQ(c.net.deny_source_ports, (std::vector<uint16_t>{11211}));
}

TEST(ServerConfig, NetSourceRulesParseAndRoundTrip) {
  auto r = parse_server_config(
      "[net]\nprefix_len = 16\nallow = [\"10.77.0.0/16\", \"192.0.2.7\", \"0.0.0.0/0\"]\n"
      "deny_source_ports = [11211, 11311]\n",
      "a.toml");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->net.prefix_len, 16);
  ASSERT_EQ(r->net.allow.size(), 3u);
  EXPECT_EQ(r->net.allow[0].to_string(), "10.77.0.0/16");
  EXPECT_EQ(r->net.allow[1].to_string(), "192.0.2.7/32");
  EXPECT_EQ(r->net.allow[2].to_string(), "0.0.0.0/0");
  EXPECT_EQ(r->net.deny_source_ports, (std::vector<uint16_t>{11211, 11311}));
  auto again = parse_server_config(to_toml(*r), "b.toml");
  ASSERT_TRUE(again.is_ok()) << again.status().message();
  EXPECT_EQ(to_toml(*again), to_toml(*r));
  EXPECT_EQ(again->net.allow, r->net.allow);
  // An empty deny list is allowed (the server's own udp_port is still denied by the stack).
  auto none = parse_server_config("[net]\ndeny_source_ports = []\n", "c.toml");
  ASSERT_TRUE(none.is_ok()) << none.status().message();
  EXPECT_TRUE(none->net.deny_source_ports.empty());
}

TEST(ServerConfig, NetSourceRuleErrorsNameTheKey) {
  EXPECT_EQ(error_of("[net]\nallow = [\"10.77.0.1/24\"]\n"),
            "test.toml: net.allow: element 0: \"10.77.0.1/24\" has host bits set past /24; did "
            "you mean \"10.77.0.0/24\"?");
  EXPECT_NE(error_of("[net]\nallow = [\"10.0.0.0/8\", \"everyone\"]\n")
                .find("test.toml: net.allow: element 1: \"everyone\" is not an IPv4 prefix"),
            std::string::npos);
  EXPECT_NE(error_of("[net]\nallow = [\"10.0.0.0/33\"]\n").find("net.allow"), std::string::npos);
  EXPECT_EQ(error_of("[net]\nallow = \"10.0.0.0/8\"\n"),
            "test.toml: net.allow: expected an array of strings, got a string");
  EXPECT_EQ(error_of("[net]\nprefix_len = 33\n"),
            "test.toml: net.prefix_len: 33 is out of range [1, 32]");
  EXPECT_EQ(error_of("[net]\nprefix_len = 0\n"),
            "test.toml: net.prefix_len: 0 is out of range [1, 32]");
  EXPECT_NE(error_of("[net]\ndeny_source_ports = [11211, 0]\n")
                .find("test.toml: net.deny_source_ports: element 0 is out of range"),
            std::string::npos);
  EXPECT_NE(error_of("[net]\ndeny_source_ports = [70000]\n").find("net.deny_source_ports"),
            std::string::npos);
  std::string many = "[net]\nallow = [";
  for (int i = 0; i < 65; ++i) {
    many += (i ? ", \"10.0." : "\"10.0.") + std::to_string(i) + ".0/24\"";
  }
  EXPECT_NE(error_of(many + "]\n").find("net.allow: 65 prefixes; at most 64"), std::string::npos);
}

// The shipped configs answer the clients the project uses and nobody else: the loadgen and the
// memif e2e tests send from 10.77.0.2, tools/netns.sh's namespace from 10.78.0.2.
TEST(ServerConfig, ShippedConfigsAllowTheirClientsOnly) {
  auto verdict = [](const ServerConfig& c, const char* src, uint16_t port) {
    const net::Identity me{net::MacAddr{{2, 0, 0, 0, 0, 1}}, c.net.ip, c.net.udp_port};
    const net::SourceFilter f(me, c.net.prefix_len, c.net.allow, c.net.deny_source_ports);
    net::Classified udp;
    udp.kind = net::Classified::Kind::kUdp;
    udp.src_mac = net::MacAddr{{2, 0, 0, 0, 0, 2}};
    udp.src_ip = net::parse_ipv4(src, "test").value();
    udp.src_port = port;
    const auto why = f.check(udp);
    return std::string(why ? net::drop_reason_name(*why) : "answered");
  };
  auto memif = load_server_config(source_file("config/kvserver.toml"));
  ASSERT_TRUE(memif.is_ok()) << memif.status().message();
  EXPECT_EQ(verdict(*memif, "10.77.0.2", 40000), "answered");
  EXPECT_EQ(verdict(*memif, "10.78.0.2", 40000), "src_not_allowed");
  EXPECT_EQ(verdict(*memif, "10.77.0.2", 11211), "src_port_denied");
  auto veth = load_server_config(source_file("config/kvserver-veth.toml"));
  ASSERT_TRUE(veth.is_ok()) << veth.status().message();
  EXPECT_EQ(verdict(*veth, "10.78.0.2", 40000), "answered");
  EXPECT_EQ(verdict(*veth, "10.78.0.255", 40000), "src_broadcast");
  EXPECT_EQ(verdict(*veth, "10.79.0.2", 40000), "src_not_allowed");
  EXPECT_EQ(verdict(*veth, "10.78.0.2", 11211), "src_port_denied");
}

}  // namespace
}  // namespace fm::config
