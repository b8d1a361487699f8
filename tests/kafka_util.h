// librdkafka's mock Kafka cluster in its own process (tests/tools/kafka_mock.cc), so that
// several portrait processes can share it and it outlives any of them.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

namespace portrait::testing_util {

class KafkaMock {
 public:
  ~KafkaMock() { Stop(); }

  // Starts a cluster of `brokers`; `topics` as "NAME:PARTITIONS" are created up front.
  bool Start(int brokers = 3, const std::vector<std::string>& topics = {}) {
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) return false;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      close(in[1]);
      close(out[0]);
      std::vector<std::string> args = {KAFKA_MOCK_BINARY, "--brokers", std::to_string(brokers)};
      for (const auto& t : topics) args.insert(args.end(), {"--topic", t});
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    stdin_ = in[1];
    FILE* f = fdopen(out[0], "r");
    char line[4096];
    bool ok = f && fgets(line, sizeof line, f) != nullptr;
    if (f) fclose(f);
    std::string s = ok ? line : "";
    if (s.rfind("bootstrap ", 0) != 0) return false;
    bootstrap_ = s.substr(10);
    while (!bootstrap_.empty() && (bootstrap_.back() == '\n' || bootstrap_.back() == '\r')) bootstrap_.pop_back();
    return true;
  }

  void Stop() {
    if (pid_ <= 0) return;
    close(stdin_);
    kill(pid_, SIGTERM);
    int status;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  const std::string& bootstrap() const { return bootstrap_; }

 private:
  pid_t pid_ = -1;
  int stdin_ = -1;
  std::string bootstrap_;
};

}  // namespace portrait::testing_util
