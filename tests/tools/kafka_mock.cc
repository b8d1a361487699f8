// Hosts librdkafka's mock Kafka cluster (the real protocol, in this process) for tests:
//   kafka_mock [--brokers N] [--topic NAME:PARTITIONS]...
// prints "bootstrap HOST:PORT,..." on stdout and serves until stdin closes or SIGTERM.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

int main(int argc, char** argv) {
  int brokers = 3;
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) {
    std::fprintf(stderr, "kafka_mock: %s\n", err);
    return 1;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--brokers") == 0) brokers = std::atoi(argv[i + 1]);
  }
  rd_kafka_mock_cluster_t* mc = rd_kafka_mock_cluster_new(rk, brokers);
  if (!mc) {
    std::fprintf(stderr, "kafka_mock: cannot create the mock cluster\n");
    return 1;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--topic") != 0) continue;
    std::string spec = argv[i + 1];
    size_t colon = spec.rfind(':');
    std::string name = spec.substr(0, colon);
    int partitions = colon == std::string::npos ? 1 : std::atoi(spec.c_str() + colon + 1);
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, name.c_str(), partitions, std::min(brokers, 3));
    if (e) {
      std::fprintf(stderr, "kafka_mock: topic %s: %s\n", name.c_str(), rd_kafka_err2str(e));
      return 1;
    }
  }
  std::printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(mc));
  std::fflush(stdout);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // Serve until stdin closes (the test went away) or we are told to stop.
  std::thread([] {
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) {
    }
    kill(getpid(), SIGTERM);
  }).detach();
  int sig = 0;
  sigwait(&set, &sig);
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return 0;
}
