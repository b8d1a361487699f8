// Real redis-server processes for tests: a standalone server, and a 3-master Redis
// Cluster created with redis-cli, on free loopback ports, with data in a temp dir.
// AOF with fsync always, so a killed server restarts with everything it acknowledged.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "temp_dir.h"

namespace portrait::testing_util {

inline bool PortFree(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// A port p with p and p + 10000 (the cluster bus) free.
inline int PickPort() {
  static std::mt19937 rng(static_cast<unsigned>(getpid() * 7919 + time(nullptr)));
  for (int i = 0; i < 1000; ++i) {
    int p = 20000 + static_cast<int>(rng() % 25000);
    if (PortFree(p) && PortFree(p + 10000)) return p;
  }
  return 0;
}

inline std::string Shell(const std::string& cmd, int* code = nullptr) {
  std::string out;
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  if (!f) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  int status = pclose(f);
  if (code) *code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

class RedisServer {
 public:
  explicit RedisServer(bool cluster = false) : cluster_(cluster), port_(PickPort()) {}
  ~RedisServer() { Kill(SIGKILL); }

  bool Start() {
    pid_ = fork();
    if (pid_ == 0) {
      // Keep the test's own stdout/stderr pipes free (redis logs to its logfile).
      int devnull = open("/dev/null", O_RDWR);
      dup2(devnull, 0);
      dup2(devnull, 1);
      dup2(devnull, 2);
      std::string port = std::to_string(port_);
      std::vector<std::string> args = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", dir_.path(),
                                       "--save", "", "--appendonly", "yes", "--appendfsync", "always",
                                       "--logfile", dir_.path() + "/redis.log", "--protected-mode", "no"};
      if (cluster_) {
        args.insert(args.end(), {"--cluster-enabled", "yes", "--cluster-config-file", dir_.path() + "/nodes.conf",
                                 "--cluster-node-timeout", "2000"});
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execvp("redis-server", argv.data());
      _exit(127);
    }
    for (int i = 0; i < 200; ++i) {
      if (Cli("PING").find("PONG") != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return false;
  }

  void Kill(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    int status;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  std::string Cli(const std::string& args) const {
    return Shell("redis-cli -h 127.0.0.1 -p " + std::to_string(port_) + " " + args);
  }

  int port() const { return port_; }
  std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  bool cluster_;
  int port_;
  pid_t pid_ = -1;
  TempDir dir_;
};

class RedisCluster {
 public:
  bool Start() {
    std::string nodes;
    for (int i = 0; i < 3; ++i) {
      servers_.push_back(std::make_unique<RedisServer>(true));
      if (!servers_.back()->Start()) return false;
      nodes += " " + servers_.back()->addr();
    }
    int code = 0;
    std::string out = Shell("redis-cli --cluster create" + nodes + " --cluster-replicas 0 --cluster-yes", &code);
    if (code != 0) {
      std::fprintf(stderr, "redis-cli --cluster create failed: %s\n", out.c_str());
      return false;
    }
    for (int i = 0; i < 400; ++i) {
      bool ok = true;
      for (auto& s : servers_) ok = ok && s->Cli("CLUSTER INFO").find("cluster_state:ok") != std::string::npos;
      if (ok) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return false;
  }
  std::vector<std::string> addrs() const {
    std::vector<std::string> a;
    for (auto& s : servers_) a.push_back(s->addr());
    return a;
  }
  RedisServer& node(int i) { return *servers_[i]; }
  void FlushAll() {
    for (auto& s : servers_) s->Cli("FLUSHALL");
  }

 private:
  std::vector<std::unique_ptr<RedisServer>> servers_;
};

// One standalone server and one 3-master cluster per test binary, started on first use
// and killed when the binary exits; a failure to start fails the test that asked.
inline RedisServer& SharedRedisServer() {
  static RedisServer s;
  static bool started = s.Start();
  if (!started) ADD_FAILURE() << "cannot start redis-server";
  return s;
}

inline RedisCluster& SharedRedisCluster() {
  static RedisCluster c;
  static bool started = c.Start();
  if (!started) ADD_FAILURE() << "cannot start the 3-master redis cluster";
  return c;
}

}  // namespace portrait::testing_util
