#!/usr/bin/env python3
"""Writes the seed corpora of the libFuzzer harnesses into tests/fuzz/corpus/<name>/.

The seeds are committed; run this again (tests/fuzz/make_corpus.py) after changing it. Each seed
is a small, valid (or deliberately almost valid) input that reaches one feature of the code under
test, so the fuzzer starts past the first checks.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG_DIR = os.path.join(HERE, "..", "..", "config")

# ---------------------------------------------------------------------------------------------
# packet: byte 0 = flags (bit 0 verify UDP checksums, bit 1 checksum the UDP reply), then a frame.

OUR_MAC = bytes([0x02, 0xFA, 0, 0, 0, 1])
PEER_MAC = bytes([0x02, 0xFA, 0, 0, 0, 2])
BCAST = b"\xff" * 6
OUR_IP = bytes([10, 77, 0, 1])
PEER_IP = bytes([10, 77, 0, 2])


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(proto, payload, options=b"", flags_frag=0x4000, src=PEER_IP, dst=OUR_IP):
    ihl = 5 + len(options) // 4
    total = ihl * 4 + len(payload)
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 0x1234, flags_frag, 64, proto, 0, src,
                    dst) + options
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def eth(dst, src, ethertype, payload, pad_to=0):
    f = dst + src + struct.pack("!H", ethertype) + payload
    return f + b"\0" * max(0, pad_to - len(f))


def arp(op, sha, spa, tha, tpa):
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, sha, spa, tha, tpa)


def icmp_echo(ident, seq, data):
    m = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + data
    return m[:2] + struct.pack("!H", csum(m)) + m[4:]


def udp(sport, dport, payload, checksum=True):
    length = 8 + len(payload)
    u = struct.pack("!HHHH", sport, dport, length, 0) + payload
    if checksum:
        pseudo = PEER_IP + OUR_IP + struct.pack("!BBH", 0, 17, length)
        c = csum(pseudo + u) or 0xFFFF
        u = u[:6] + struct.pack("!H", c) + u[8:]
    return u


def memcached_udp(request_id, text):
    return struct.pack("!HHHH", request_id, 0, 1, 0) + text


def packet_seeds():
    get = memcached_udp(7, b"get foo\r\n")
    return {
        "arp_request": b"\x00" + eth(BCAST, PEER_MAC, 0x0806,
                                     arp(1, PEER_MAC, PEER_IP, b"\0" * 6, OUR_IP), 60),
        "arp_reply": b"\x00" + eth(OUR_MAC, PEER_MAC, 0x0806,
                                   arp(2, PEER_MAC, PEER_IP, OUR_MAC, OUR_IP), 60),
        "icmp_echo": b"\x00" + eth(OUR_MAC, PEER_MAC, 0x0800,
                                   ipv4(1, icmp_echo(1, 1, b"farmem-ping-data"))),
        "icmp_echo_options": b"\x00" + eth(OUR_MAC, PEER_MAC, 0x0800,
                                           ipv4(1, icmp_echo(2, 9, b"abc"), options=b"\x01" * 4)),
        "icmp_echo_padded": b"\x00" + eth(BCAST, PEER_MAC, 0x0800, ipv4(1, icmp_echo(3, 1, b"")),
                                          60),
        "udp_get_checksum": b"\x03" + eth(OUR_MAC, PEER_MAC, 0x0800,
                                          ipv4(17, udp(40000, 11211, get))),
        "udp_get_no_checksum": b"\x01" + eth(OUR_MAC, PEER_MAC, 0x0800,
                                             ipv4(17, udp(40001, 11211, get, checksum=False))),
        "udp_fragment": b"\x00" + eth(OUR_MAC, PEER_MAC, 0x0800,
                                      ipv4(17, udp(40002, 11211, get), flags_frag=0x2000)),
        "ipv6": b"\x00" + eth(OUR_MAC, PEER_MAC, 0x86DD, b"\x60" + b"\0" * 39),
        "mac_text": b"02:FA:00:00:00:0a",
        "ip_text": b"10.77.0.255",
    }


# ---------------------------------------------------------------------------------------------
# datagram: byte 0 = configuration (datagram_fuzz.cc), then the UDP payload.

def datagram_seeds():
    def d(config, text, request_id=1, seq=0, total=1):
        return bytes([config]) + struct.pack("!HHHH", request_id, seq, total, 0) + text

    return {
        "default_set_get": d(0, b"set a 0 0 5\r\nhello\r\nget a\r\ndelete a\r\n"),
        "default_get_big": d(0, b"get big\r\n"),
        "default_stats": d(0, b"stats\r\nversion\r\n"),
        "small_get_big_twice": d(1, b"get big big\r\n"),
        "small_gets_all": d(1, b"gets k0 k1 num slot half big\r\n"),
        "small_incr": d(1, b"incr num 1\r\ndecr num 5\r\nincr k1 2\r\n"),
        "small_storage": d(1, b"add x 1 0 3\r\nabc\r\nappend x 0 0 2\r\nde\r\n"
                              b"prepend x 0 0 1\r\nz\r\ncas x 0 0 1 1\r\nq\r\nget x\r\n"),
        "tiny_dgram_get": d(2, b"get slot half\r\n"),
        "tiny_dgram_touch": d(2, b"touch k1 100\r\ngat 0 k1\r\ngats 10 k0 slot\r\n"),
        "tight_get_big_version": d(3, b"get big\r\nversion\r\nversion\r\n"),
        "tight_long_key": d(3, b"get half " + b"k" * 251 + b"\r\nget k1\r\n"),
        "jumbo_get": d(4, b"get big half\r\nget big\r\n"),
        "multi_packet": d(1, b"get k1\r\n", seq=1, total=2),
        "noreply": d(1, b"set y 0 0 1 noreply\r\n1\r\nincr y 5 noreply\r\nget y\r\n"),
        "bad_lines": d(1, b"bogus\r\nset z 0 0 -1\r\nget\r\nverbosity\r\nflush_all 0\r\nquit\r\n"),
    }


# ---------------------------------------------------------------------------------------------
# config: TOML text.

def config_seeds():
    seeds = {}
    for name in ("kvserver.toml", "memnode.toml", "kvserver-veth.toml"):
        path = os.path.join(CONFIG_DIR, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                seeds[name.replace(".toml", "")] = f.read()
    seeds.update({
        "kv_small": b"[kv]\nmemory_mb = 1\nitem_size_max = 4096\nreply_buffer_kb = 8\n",
        "memnode_verbs": b"[memnode]\npool_mb = 1\ntransport = \"verbs\"\n"
                         b"listen = \"tcp:10.0.0.1:7471\"\n[verbs]\ngid_index = -1\n",
        "neighbors": b"[net]\nip = \"10.0.0.1\"\n"
                     b"neighbors = [{ ip = \"10.0.0.2\", mac = \"02:00:00:00:00:02\" }]\n",
        "paging_far": b"[paging]\nmode = \"far\"\nlocal_mb = 8\n[paging.emulated]\n"
                      b"jitter = \"exponential\"\njitter_ns = 100\nlink_gbps = 25.5\n",
        "strings": b"[eal]\nfile_prefix = \"a\\\"b\\u00e9\"\nextra_args = ['--x', \"\"\"y\"\"\"]\n",
        "unknown_key": b"[kv]\nmemory_mbb = 1\n",
        "broken": b"[eal\nlcores = [1,",
    })
    return seeds


# ---------------------------------------------------------------------------------------------
# control: JSON lines.

def control_seeds():
    return {
        "help": b'{"v":1,"id":1,"cmd":"help"}\n',
        "version": b'{"id":2,"cmd":"version"}\n',
        "cores": b'{"v":1,"id":3,"cmd":"cores","active":4,"auto":true,"park":"spin"}\n',
        "set_range": b'{"id":"x","cmd":"set","n":18446744073709551615}\n{"id":4,"cmd":"set","n":-7}\n',
        "name_unicode": b'{"cmd":"name","name":"\\u00e9\\ud800\xff"}\n',
        "echo": b'{"cmd":"echo","a":[1,2,{"b":null}],"f":1.5e300,"s":"\\n"}\n',
        "throw": b'{"cmd":"throw","odd":1}\r\n{"cmd":"throw"}\n{"cmd":"flag","on":false}\n',
        "bad": b'hello\n[1,2]\n{"v":2,"cmd":"help"}\n{"cmd":7}\n  \n{"cmd":"nope"}\n',
    }


# ---------------------------------------------------------------------------------------------
# memnode_wire: byte 0 = side (bit 0: bytes from a memory node) and transport (bit 1: verbs).

MAGIC, VERSION = 0x464D4E44, 1
HELLO, HELLO_ACK, QP_CONNECT, QP_ACCEPT, HEARTBEAT, GOODBYE, ERROR = range(1, 8)


def msg(mtype, body, length=None):
    n = 16 + len(body) if length is None else length
    return struct.pack("<IHHII", MAGIC, VERSION, mtype, n, 0) + body


def hello(transport, cores=4, name=b"kvserver-1"):
    return msg(HELLO, struct.pack("<HHI48s", transport, cores, 0, name))


def qp_info():
    return struct.pack("<IIHBBI16s", 0x1234, 0xABCDE, 7, 1, 0, 3, b"\xfe\x80" + b"\0" * 14)


def memnode_wire_seeds():
    heartbeat = msg(HEARTBEAT, struct.pack("<Q", 5))
    goodbye = msg(GOODBYE, struct.pack("<Q", 0))
    return {
        "compute_emulated": b"\x00" + hello(1) + heartbeat + msg(99, b"") + goodbye,
        "compute_verbs": b"\x02" + hello(2) + msg(QP_CONNECT, struct.pack("<HH", 3, 0) + qp_info())
                         + heartbeat + goodbye,
        "compute_wrong_transport": b"\x00" + hello(2, name=b"x" * 48),
        "compute_bad_length": b"\x02" + hello(2) + msg(QP_CONNECT, b"", length=5000),
        "memnode_emulated": b"\x01" + msg(HELLO_ACK, struct.pack("<QQII", 1 << 28, 0, 0, 0))
                            + heartbeat + goodbye,
        "memnode_verbs": b"\x03" + msg(HELLO_ACK, struct.pack("<QQII", 1 << 28, 0x7F0000000000, 9, 0))
                         + msg(QP_ACCEPT, struct.pack("<HH", 3, 0) + qp_info())
                         + msg(ERROR, b"no queue pair left".ljust(112, b"\0")) + goodbye,
        "memnode_refused": b"\x01" + msg(ERROR, b"x" * 112),
        "bad_magic": b"\x00" + b"GET / HTTP/1.0\r\n\r\n",
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
    for name, seeds in (("packet", packet_seeds()), ("datagram", datagram_seeds()),
                        ("config", config_seeds()), ("control", control_seeds()),
                        ("memnode_wire", memnode_wire_seeds())):
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        for seed, data in seeds.items():
            with open(os.path.join(d, seed), "wb") as f:
                f.write(data)
        print(f"{d}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
