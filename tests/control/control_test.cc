// fm::ControlServer and fm::ControlClient over a real Unix socket in a temporary directory:
// framing, every error code, bad clients, socket-file life cycle.
#include <fcntl.h>
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <stdexcept>
#include <vector>

#include "tests/control/control_util.h"

namespace fm::test {
namespace {

class ControlServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_ / "ctl.sock";
    auto s = ControlServer::open(path_, "control_test");
    ASSERT_TRUE(s.is_ok()) << s.status().message();
    server_ = std::move(*s);
    server_->add("echo", "returns the request",
                 [](const json& req) -> Result<json> { return req; });
    server_->add("fail", "fails with the Errc named by \"errc\"",
                 [](const json& req) -> Result<json> {
                   static const std::map<std::string, Errc> kErrc = {
                       {"invalid_argument", Errc::kInvalidArgument},
                       {"not_found", Errc::kNotFound},
                       {"unavailable", Errc::kUnavailable},
                       {"resource_exhausted", Errc::kResourceExhausted},
                       {"internal", Errc::kInternal},
                       {"timeout", Errc::kTimeout},
                       {"restart_required", Errc::kRestartRequired},
                       {"permission_denied", Errc::kPermissionDenied},
                   };
                   return error(kErrc.at(req.at("errc").get<std::string>()),
                                "failed as asked: " + req.at("errc").get<std::string>());
                 });
    server_->add("throw", "throws", [](const json& req) -> Result<json> {
      if (req.value("standard", true)) throw std::runtime_error("handler exploded");
      throw 42;
    });
    server_->add("big", "a string result of \"bytes\" bytes", [](const json& req) -> Result<json> {
      auto n = control_int_arg(req, "bytes", 0, 16 << 20);
      if (!n) return n.status();
      return json(std::string(size_t(*n), 'x'));
    });
    ASSERT_TRUE(server_->start().is_ok());
  }

  // One request over a fresh connection.
  json call(const json& req) {
    RawConn c(path_);
    EXPECT_TRUE(c.connected());
    EXPECT_TRUE(c.send(req.dump() + "\n"));
    return c.read_json();
  }

  static void expect_error(const json& resp, const std::string& code, const json& id = nullptr) {
    ASSERT_TRUE(resp.is_object()) << resp;
    EXPECT_EQ(resp["v"], 1) << resp;
    EXPECT_EQ(resp["ok"], false) << resp;
    EXPECT_EQ(resp["id"], id) << resp;
    ASSERT_TRUE(resp["error"].is_object()) << resp;
    EXPECT_EQ(resp["error"]["code"], code) << resp;
    EXPECT_TRUE(resp["error"]["message"].is_string()) << resp;
    EXPECT_FALSE(resp["error"]["message"].get<std::string>().empty()) << resp;
  }

  TempDir dir_;
  std::string path_;
  std::unique_ptr<ControlServer> server_;
};

TEST_F(ControlServerTest, RoundTripEchoesIdAndVersion) {
  const json req = {{"v", 1}, {"id", "abc"}, {"cmd", "echo"}, {"x", {1, 2}}};
  const json resp = call(req);
  EXPECT_EQ(resp, (json{{"v", 1}, {"id", "abc"}, {"ok", true}, {"result", req}}));

  // Any JSON id is echoed as it came; no id answers null; "v" may be left out.
  const json obj_id = {{"a", {1, "b", nullptr}}};
  EXPECT_EQ(call({{"id", obj_id}, {"cmd", "echo"}})["id"], obj_id);
  EXPECT_EQ(call({{"id", 7}, {"cmd", "echo"}})["id"], 7);
  const json no_id = call({{"cmd", "echo"}});
  ASSERT_TRUE(no_id.contains("id"));
  EXPECT_TRUE(no_id["id"].is_null());
  EXPECT_EQ(no_id["ok"], true);
}

TEST_F(ControlServerTest, BuiltinHelpAndVersion) {
  const json help = call({{"cmd", "help"}});
  ASSERT_EQ(help["ok"], true) << help;
  ASSERT_TRUE(help["result"].is_array());
  std::map<std::string, std::string> cmds;
  for (const json& c : help["result"]) cmds[c.at("cmd")] = c.at("help");
  EXPECT_EQ(cmds.at("echo"), "returns the request");
  EXPECT_TRUE(cmds.contains("help"));
  EXPECT_TRUE(cmds.contains("version"));
  EXPECT_TRUE(cmds.contains("big"));

  const json version = call({{"cmd", "version"}});
  EXPECT_EQ(version["result"], (json{{"protocol", 1}, {"program", "control_test"}}));
}

TEST_F(ControlServerTest, ProtocolErrorCodes) {
  RawConn c(path_);
  ASSERT_TRUE(c.connected());
  auto ask = [&](std::string_view line) {
    EXPECT_TRUE(c.send(std::string(line) + "\n"));
    return c.read_json();
  };
  expect_error(ask("this is not json"), "parse_error");
  expect_error(ask("{\"cmd\":\"echo\""), "parse_error");  // truncated object
  expect_error(ask("[1,2,3]"), "bad_request");
  expect_error(ask("\"echo\""), "bad_request");
  expect_error(ask(R"({"id":5})"), "bad_request", 5);
  expect_error(ask(R"({"id":6,"cmd":7})"), "bad_request", 6);
  expect_error(ask(R"({"id":8,"v":2,"cmd":"echo"})"), "unsupported_version", 8);
  expect_error(ask(R"({"id":9,"v":"1","cmd":"echo"})"), "unsupported_version", 9);
  expect_error(ask(R"({"id":10,"v":1.5,"cmd":"echo"})"), "unsupported_version", 10);
  const json unknown = ask(R"({"id":11,"cmd":"no.such"})");
  expect_error(unknown, "unknown_command", 11);
  EXPECT_NE(unknown["error"]["message"].get<std::string>().find("no.such"), std::string::npos);
  // The connection survives every one of them.
  EXPECT_EQ(ask(R"({"id":12,"v":1,"cmd":"echo"})")["ok"], true);
}

TEST_F(ControlServerTest, HandlerErrcMapsToCode) {
  for (const char* code : {"invalid_argument", "not_found", "unavailable", "resource_exhausted",
                           "internal", "timeout", "restart_required", "permission_denied"}) {
    const json resp = call({{"id", code}, {"cmd", "fail"}, {"errc", code}});
    expect_error(resp, code, code);
    EXPECT_EQ(resp["error"]["message"], std::string("failed as asked: ") + code);
  }
  EXPECT_STREQ(control_error_code(Errc::kOk), "internal");
}

TEST_F(ControlServerTest, ThrowingHandlerAnswersInternalAndThreadSurvives) {
  const json a = call({{"id", 1}, {"cmd", "throw"}});
  expect_error(a, "internal", 1);
  EXPECT_NE(a["error"]["message"].get<std::string>().find("handler exploded"), std::string::npos);
  expect_error(call({{"id", 2}, {"cmd", "throw"}, {"standard", false}}), "internal", 2);
  // A json exception from a handler reading a missing argument is one more throw.
  expect_error(call({{"id", 3}, {"cmd", "fail"}}), "internal", 3);
  EXPECT_EQ(call({{"cmd", "echo"}})["ok"], true);
}

TEST_F(ControlServerTest, PartialLinesAndPipelinedRequests) {
  RawConn c(path_);
  ASSERT_TRUE(c.connected());
  // One request a byte at a time.
  const std::string one = R"({"id":1,"cmd":"echo"})"
                          "\n";
  for (char ch : one) {
    ASSERT_TRUE(c.send(std::string_view(&ch, 1)));
    std::this_thread::sleep_for(200us);
  }
  EXPECT_EQ(c.read_json()["id"], 1);
  // Three requests in one write, answered in order.
  ASSERT_TRUE(c.send(R"({"id":2,"cmd":"echo"})"
                     "\n"
                     R"({"id":3,"cmd":"nope"})"
                     "\n"
                     R"({"id":4,"cmd":"version"})"
                     "\n"));
  EXPECT_EQ(c.read_json()["id"], 2);
  expect_error(c.read_json(), "unknown_command", 3);
  const json v = c.read_json();
  EXPECT_EQ(v["id"], 4);
  EXPECT_EQ(v["result"]["protocol"], 1);
  // A request split across writes, its newline arriving with the start of the next one; CRLF;
  // blank lines are skipped without an answer.
  ASSERT_TRUE(c.send(R"({"id":5,"cm)"));
  std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(c.send(R"(d":"echo"})"
                     "\r\n\n   \n"
                     R"({"id":6,)"));
  std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(c.send(R"("cmd":"echo"})"
                     "\n"));
  EXPECT_EQ(c.read_json()["id"], 5);
  EXPECT_EQ(c.read_json()["id"], 6);
}

TEST_F(ControlServerTest, HalfClosedClientGetsItsAnswers) {
  RawConn c(path_);
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(R"({"id":1,"cmd":"echo"})"
                     "\n"
                     R"({"id":2,"cmd":"echo"})"
                     "\n"
                     R"({"id":3,"cmd":"ec)"));
  ::shutdown(c.fd(), SHUT_WR);
  EXPECT_EQ(c.read_json()["id"], 1);
  EXPECT_EQ(c.read_json()["id"], 2);
  // The incomplete third request is dropped and the connection closed.
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(ControlServerTest, LineTooLongIsAnsweredAndClosed) {
  {
    // No newline at all: answered once the partial line passes the limit.
    RawConn c(path_);
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.send(std::string(kControlMaxLineBytes + 4096, 'a')));
    expect_error(c.read_json(), "line_too_long");
    EXPECT_TRUE(c.closed_by_peer());
  }
  {
    // A complete line one byte too long, after a good request that is still answered.
    RawConn c(path_);
    ASSERT_TRUE(c.connected());
    std::string line = R"({"id":1,"cmd":"echo"})"
                       "\n";
    std::string body = R"({"cmd":"echo","pad":")";
    body += std::string(kControlMaxLineBytes + 1 - body.size() - 2, 'p') + "\"}";
    ASSERT_EQ(body.size(), kControlMaxLineBytes + 1);
    ASSERT_TRUE(c.send(line + body + "\n"));
    EXPECT_EQ(c.read_json()["id"], 1);
    expect_error(c.read_json(), "line_too_long");
    EXPECT_TRUE(c.closed_by_peer());
  }
  {
    // Exactly at the limit is fine.
    RawConn c(path_);
    ASSERT_TRUE(c.connected());
    std::string body = R"({"cmd":"echo","id":2,"pad":")";
    body += std::string(kControlMaxLineBytes - body.size() - 2, 'p') + "\"}";
    ASSERT_EQ(body.size(), kControlMaxLineBytes);
    ASSERT_TRUE(c.send(body + "\n"));
    const json resp = c.read_json();
    EXPECT_EQ(resp["ok"], true);
    EXPECT_EQ(resp["id"], 2);
  }
  EXPECT_EQ(call({{"cmd", "echo"}})["ok"], true);
}

TEST_F(ControlServerTest, ClientLeavingMidLineDoesNotDisturbOthers) {
  RawConn stays(path_);
  ASSERT_TRUE(stays.connected());
  {
    RawConn leaves(path_);
    ASSERT_TRUE(leaves.connected());
    ASSERT_TRUE(leaves.send(R"({"id":1,"cmd":"ec)"));
    ASSERT_TRUE(eventually([&] { return server_->client_count() == 2; }));
  }
  ASSERT_TRUE(eventually([&] { return server_->client_count() == 1; }));
  ASSERT_TRUE(stays.send(R"({"id":2,"cmd":"echo"})"
                         "\n"));
  EXPECT_EQ(stays.read_json()["id"], 2);
}

TEST_F(ControlServerTest, ClientThatDoesNotReadIsDroppedNotWaitedFor) {
  RawConn hog(path_);
  ASSERT_TRUE(hog.connected());
  // 40 responses of 64 KiB each: far more than socket buffers plus the 1 MiB allowance.
  std::string burst;
  for (int i = 0; i < 40; ++i)
    burst += R"({"cmd":"big","bytes":65536})"
             "\n";
  ASSERT_TRUE(hog.send(burst));
  // Others are served meanwhile, and the hog is dropped.
  RawConn other(path_);
  ASSERT_TRUE(other.connected());
  ASSERT_TRUE(other.send(R"({"id":1,"cmd":"echo"})"
                         "\n"));
  EXPECT_EQ(other.read_json(2000ms)["id"], 1);
  EXPECT_TRUE(eventually([&] { return server_->client_count() == 1; }));
  EXPECT_TRUE(hog.closed_by_peer());
}

TEST_F(ControlServerTest, SlowReaderUnderTheLimitGetsEverything) {
  RawConn slow(path_);
  ASSERT_TRUE(slow.connected());
  std::string burst;
  for (int i = 0; i < 6; ++i) {
    burst += json{{"id", i}, {"cmd", "big"}, {"bytes", 100000}}.dump() + "\n";
  }
  ASSERT_TRUE(slow.send(burst));
  std::this_thread::sleep_for(100ms);  // the server buffers what the socket does not take
  EXPECT_EQ(server_->client_count(), 1u);
  for (int i = 0; i < 6; ++i) {
    const json r = slow.read_json();
    EXPECT_EQ(r["id"], i);
    EXPECT_EQ(r["result"].get<std::string>().size(), 100000u);
  }
}

TEST_F(ControlServerTest, SeventeenthClientIsRefusedWithAnError) {
  std::vector<std::unique_ptr<RawConn>> conns;
  for (size_t i = 0; i < kControlMaxClients; ++i) {
    conns.push_back(std::make_unique<RawConn>(path_));
    ASSERT_TRUE(conns.back()->connected());
    ASSERT_TRUE(conns.back()->send(json{{"id", i}, {"cmd", "echo"}}.dump() + "\n"));
    ASSERT_EQ(conns.back()->read_json()["id"], i);
  }
  EXPECT_EQ(server_->client_count(), kControlMaxClients);
  {
    RawConn extra(path_);
    ASSERT_TRUE(extra.connected());
    expect_error(extra.read_json(), "too_many_clients");
    EXPECT_TRUE(extra.closed_by_peer());
  }
  // The first sixteen still work; when one leaves, a newcomer gets its place.
  ASSERT_TRUE(conns[7]->send(R"({"id":"again","cmd":"echo"})"
                             "\n"));
  EXPECT_EQ(conns[7]->read_json()["id"], "again");
  conns[0].reset();
  ASSERT_TRUE(eventually([&] { return server_->client_count() == kControlMaxClients - 1; }));
  RawConn late(path_);
  ASSERT_TRUE(late.send(R"({"id":"late","cmd":"echo"})"
                        "\n"));
  EXPECT_EQ(late.read_json()["id"], "late");
}

TEST_F(ControlServerTest, StopClosesClientsAndRemovesTheSocket) {
  RawConn idle(path_);
  RawConn mid_line(path_);
  RawConn unread(path_);
  ASSERT_TRUE(idle.connected() && mid_line.connected() && unread.connected());
  ASSERT_TRUE(mid_line.send(R"({"cmd":"ec)"));
  ASSERT_TRUE(unread.send(R"({"cmd":"big","bytes":800000})"
                          "\n"));
  ASSERT_TRUE(eventually([&] { return server_->client_count() == 3; }));
  std::this_thread::sleep_for(20ms);

  const auto t0 = std::chrono::steady_clock::now();
  server_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_TRUE(idle.closed_by_peer());
  EXPECT_TRUE(mid_line.closed_by_peer());
  EXPECT_TRUE(unread.closed_by_peer());
  EXPECT_FALSE(std::filesystem::exists(path_));
  EXPECT_EQ(server_->client_count(), 0u);
  server_->stop();  // idempotent
  EXPECT_FALSE(RawConn(path_).connected());
  // Requests can still be answered in-process after stop().
  EXPECT_EQ(json::parse(server_->handle_line(R"({"cmd":"echo","id":3})"))["id"], 3);
}

TEST_F(ControlServerTest, HandleLineMatchesTheWire) {
  const std::string line = R"({"id":"x","cmd":"fail","errc":"restart_required"})";
  RawConn c(path_);
  ASSERT_TRUE(c.send(line + "\n"));
  EXPECT_EQ(c.read_line(), server_->handle_line(line));
}

// A hostile line nested 60,000 levels deep (within the 64 KiB line limit) is refused before it
// is parsed; 32 levels are still fine, and the connection survives.
TEST_F(ControlServerTest, DeeplyNestedRequestsAreRefused) {
  RawConn c(path_);
  ASSERT_TRUE(c.connected());
  auto ask = [&](std::string_view line) {
    EXPECT_TRUE(c.send(std::string(line) + "\n"));
    return c.read_json();
  };
  const std::string deep = std::string(30000, '[') + std::string(30000, ']');
  const json r = ask(deep);
  expect_error(r, "bad_request");
  EXPECT_NE(r["error"]["message"].get<std::string>().find("30000 levels"), std::string::npos);
  expect_error(ask(R"({"id":1,"cmd":"echo","x":)" + std::string(32, '[') + std::string(32, ']') +
                   "}"),
               "bad_request");  // the object itself is a level: 33 in all; id unread: null
  EXPECT_EQ(ask(R"({"id":2,"cmd":"echo","x":)" + std::string(31, '[') + std::string(31, ']') +
                "}")["ok"],
            true);
  // Brackets inside strings do not count.
  EXPECT_EQ(ask(R"({"id":3,"cmd":"echo","s":")" + std::string(100, '[') + R"(\"[["})")["ok"], true);
  EXPECT_EQ(json_nesting(R"({"a":[{"b":"]]]"}]})"), 3u);
  EXPECT_EQ(json_nesting("]]]"), 0u);
}

TEST_F(ControlServerTest, StartTwiceIsAnError) { EXPECT_FALSE(server_->start().is_ok()); }

// --- socket file life cycle -------------------------------------------------------------------

TEST(ControlSocketFile, LiveSocketIsRefusedStaleOneReplaced) {
  TempDir dir;
  const std::string path = dir / "kv.sock";
  auto first = ControlServer::open(path);
  ASSERT_TRUE(first.is_ok()) << first.status().message();
  ASSERT_TRUE((*first)->start().is_ok());

  auto second = ControlServer::open(path);
  ASSERT_FALSE(second.is_ok());
  EXPECT_EQ(second.status().code(), Errc::kUnavailable);
  EXPECT_EQ(second.status().message(),
            "control socket " + path + " is in use by another process (set control.socket)");
  // The live server was not disturbed.
  RawConn c(path);
  ASSERT_TRUE(c.send(R"({"cmd":"version"})"
                     "\n"));
  EXPECT_EQ(c.read_json()["ok"], true);
  c.close();

  (*first)->stop();
  EXPECT_FALSE(std::filesystem::exists(path));

  // A socket file whose owner died without removing it.
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ::close(fd);
  }
  ASSERT_TRUE(std::filesystem::is_socket(path));
  auto third = ControlServer::open(path);
  ASSERT_TRUE(third.is_ok()) << third.status().message();
  ASSERT_TRUE((*third)->start().is_ok());
  RawConn d(path);
  ASSERT_TRUE(d.send(R"({"cmd":"version"})"
                     "\n"));
  EXPECT_EQ(d.read_json()["ok"], true);
}

TEST(ControlSocketFile, ModesAndParentDirectory) {
  TempDir dir;
  const std::string path = dir / "run/farmem/kv.sock";
  const mode_t old_umask = ::umask(077);
  auto s = ControlServer::open(path);
  ::umask(old_umask);
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  struct stat st {};
  ASSERT_EQ(::stat((dir / "run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(::stat((dir / "run/farmem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_EQ((*s)->path(), path);
}

TEST(ControlSocketFile, BadPathsGiveClearErrors) {
  TempDir dir;
  // Too long for sun_path.
  const std::string long_path = dir / (std::string(120, 'l') + ".sock");
  auto a = ControlServer::open(long_path);
  ASSERT_FALSE(a.is_ok());
  EXPECT_EQ(a.status().code(), Errc::kInvalidArgument);
  EXPECT_NE(a.status().message().find("sun_path"), std::string::npos) << a.status().message();
  EXPECT_NE(a.status().message().find(long_path), std::string::npos);

  EXPECT_FALSE(ControlServer::open("").is_ok());

  // A regular file is never removed.
  const std::string file = dir / "not-a-socket";
  std::ofstream(file) << "keep me";
  auto b = ControlServer::open(file);
  ASSERT_FALSE(b.is_ok());
  EXPECT_NE(b.status().message().find("is not a socket"), std::string::npos);
  EXPECT_TRUE(std::filesystem::is_regular_file(file));

  // A parent that is a file.
  auto c = ControlServer::open(file + "/x.sock");
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(c.status().message().find("is not a directory"), std::string::npos)
      << c.status().message();
}

TEST(ControlSocketFile, PermissionDeniedIsReported) {
  if (::geteuid() == 0) GTEST_SKIP() << "running as root: directory permissions do not apply";
  TempDir dir;
  const std::string locked = dir / "locked";
  ASSERT_EQ(::mkdir(locked.c_str(), 0555), 0);
  auto s = ControlServer::open(locked + "/kv.sock");
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.status().message().find("Permission denied"), std::string::npos)
      << s.status().message();
  auto t = ControlServer::open(locked + "/sub/kv.sock");
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.status().message().find("Permission denied"), std::string::npos)
      << t.status().message();
}

TEST(ControlSocketFile, StopLeavesAPathSomeoneElseTookOver) {
  TempDir dir;
  const std::string path = dir / "kv.sock";
  auto s = ControlServer::open(path);
  ASSERT_TRUE(s.is_ok());
  ASSERT_EQ(::unlink(path.c_str()), 0);
  std::ofstream(path) << "another owner";
  (*s)->stop();
  EXPECT_TRUE(std::filesystem::is_regular_file(path));
}

TEST(ControlSocketFile, DestructorStopsARunningServer) {
  TempDir dir;
  const std::string path = dir / "kv.sock";
  {
    auto s = ControlServer::open(path);
    ASSERT_TRUE(s.is_ok());
    ASSERT_TRUE((*s)->start().is_ok());
    RawConn c(path);
    ASSERT_TRUE(c.connected());
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

// --- argument helpers and the client -----------------------------------------------------------

TEST(ControlArgs, ValidateTypeAndRange) {
  const json req = {{"n", 5},   {"neg", -3}, {"big", 18446744073709551615ull},
                    {"s", "x"}, {"b", true}, {"f", 1.5}};
  EXPECT_EQ(control_int_arg(req, "n", 0, 10).value(), 5);
  EXPECT_EQ(control_int_arg(req, "neg").value(), -3);
  auto missing = control_int_arg(req, "active");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), Errc::kInvalidArgument);
  EXPECT_EQ(missing.status().message(), "missing argument \"active\"");
  auto range = control_int_arg(req, "n", 6, 10);
  ASSERT_FALSE(range.is_ok());
  EXPECT_EQ(range.status().message(), "argument \"n\" = 5 is out of range [6, 10]");
  EXPECT_FALSE(control_int_arg(req, "big").is_ok());
  EXPECT_FALSE(control_int_arg(req, "f").is_ok());
  EXPECT_FALSE(control_int_arg(req, "s").is_ok());
  EXPECT_EQ(control_bool_arg(req, "b").value(), true);
  auto not_bool = control_bool_arg(req, "n");
  ASSERT_FALSE(not_bool.is_ok());
  EXPECT_EQ(not_bool.status().message(), "argument \"n\" must be true or false, not 5");
  EXPECT_EQ(control_string_arg(req, "s").value(), "x");
  EXPECT_FALSE(control_string_arg(req, "b").is_ok());
}

TEST(ControlClientTest, CallsAndReportsTransportFailures) {
  TempDir dir;
  const std::string path = dir / "kv.sock";
  auto missing = ControlClient::connect(path, 500ms);
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), Errc::kUnavailable);
  EXPECT_NE(missing.status().message().find(path), std::string::npos);

  auto s = ControlServer::open(path, "prog");
  ASSERT_TRUE(s.is_ok());
  ASSERT_TRUE((*s)->start().is_ok());
  auto c = ControlClient::connect(path, 2000ms);
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  auto r1 = c->call({{"cmd", "version"}});
  ASSERT_TRUE(r1.is_ok()) << r1.status().message();
  EXPECT_EQ((*r1)["ok"], true);
  EXPECT_EQ((*r1)["result"]["program"], "prog");
  auto r2 = c->call({{"cmd", "nope"}, {"id", "mine"}});
  ASSERT_TRUE(r2.is_ok());
  EXPECT_EQ((*r2)["error"]["code"], "unknown_command");
  EXPECT_EQ((*r2)["id"], "mine");
  EXPECT_FALSE(c->call(json::array()).is_ok());

  (*s)->stop();
  auto r3 = c->call({{"cmd", "version"}});
  ASSERT_FALSE(r3.is_ok());
  EXPECT_EQ(r3.status().code(), Errc::kUnavailable);
}

TEST(ControlClientTest, SilentServerTimesOut) {
  TempDir dir;
  const std::string path = dir / "mute.sock";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 4), 0);  // never accepts, never answers
  auto c = ControlClient::connect(path, 200ms);
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  const auto t0 = std::chrono::steady_clock::now();
  auto r = c->call({{"cmd", "version"}});
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Errc::kTimeout);
  EXPECT_NE(r.status().message().find(path), std::string::npos);
  EXPECT_GE(took, 190ms);
  EXPECT_LT(took, 2s);
  ::close(fd);
}

}  // namespace
}  // namespace fm::test
