// Token scopes over the whole route table, against the real binary: the routes are read
// from `portrait routes` (the table the server itself uses), so a route added later is
// checked by this test without editing it. With tokens configured every route but the
// public ones answers 401 without a token, 403 with a token lacking the route's scope, and
// its usual answer with the right one; secrets come from the environment and a file and
// never show in the server's output.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include "e2e/e2e_util.h"
#include "temp_dir.h"

namespace portrait::testing_util {
namespace {

struct TableRoute {
  std::string method, path, scope;
};

std::vector<TableRoute> RouteTableOfTheBinary() {
  std::string out;
  EXPECT_EQ(RunCommand(std::string(PORTRAIT_BINARY) + " routes", &out), 0) << out;
  std::vector<TableRoute> routes;
  std::regex row(R"(^\| `(GET|POST|DELETE) ([^`]+)` \| ([a-z]+) \|)");
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_search(line, m, row)) routes.push_back({m[1], m[2], m[3]});
  }
  return routes;
}

// The status line of a request on a fresh socket (the stream route never ends its answer).
long StatusOf(int port, const std::string& method, const std::string& path, const std::string& token) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return 0;
  }
  std::string body = method == "POST" ? "{}" : "";
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
  if (method != "GET") req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  char buf[64] = {0};
  ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
  ::close(fd);
  if (n < 12) return 0;
  return std::strtol(buf + 9, nullptr, 10);  // "HTTP/1.1 200 ..."
}

TEST(AuthTest, EveryRouteOfTheTableChecksItsScope) {
  TempDir dir;
  {
    std::ofstream f(dir.path() + "/ops.token");
    f << "ops-secret-from-file\n";
  }
  ::setenv("PORTRAIT_E2E_READER_TOKEN", "reader-secret-from-env", 1);
  std::string tokens = "tokens = { writer = \"writer-secret-plain\", "
                       "reader = { token = \"env:PORTRAIT_E2E_READER_TOKEN\", scopes = [\"read\"] }, "
                       "ops = { token = \"file:" + dir.path() + "/ops.token\", scopes = [\"admin\"] } }";
  std::string config = WriteExampleConfig(
      dir.path(), {{"max_json_depth = 32         # deeper JSON is rejected as too_deep", "max_json_depth = 32\n" + tokens}});
  ASSERT_FALSE(config.empty());
  ServerProcess server(config, dir.path() + "/data");
  ASSERT_TRUE(server.Start()) << server.output();

  const std::map<std::string, std::string> token_of = {
      {"read", "reader-secret-from-env"}, {"write", "writer-secret-plain"}, {"admin", "ops-secret-from-file"}};
  std::vector<TableRoute> routes = RouteTableOfTheBinary();
  ASSERT_GE(routes.size(), 15u) << "the route table could not be read";
  int checked = 0;
  for (const TableRoute& r : routes) {
    std::string path = std::regex_replace(r.path, std::regex(R"(\{uid\})"), "auth-u");
    path = std::regex_replace(path, std::regex(R"(\{tag\})"), "clicks");
    path = std::regex_replace(path, std::regex(R"(\{[a-z_]+\})"), "x");
    SCOPED_TRACE(r.method + " " + path + " (" + r.scope + ")");
    ASSERT_TRUE(r.scope == "public" || token_of.count(r.scope)) << "a route with scope " << r.scope;
    long open = StatusOf(server.port(), r.method, path, "");
    if (r.scope == "public") {
      EXPECT_EQ(open, 200);
      continue;
    }
    EXPECT_EQ(open, 401) << "without a token";
    EXPECT_EQ(StatusOf(server.port(), r.method, path, "not-a-known-token"), 401);
    for (const auto& [scope, token] : token_of) {
      long got = StatusOf(server.port(), r.method, path, token);
      if (scope == r.scope) {
        EXPECT_NE(got, 401);
        EXPECT_NE(got, 403);
        EXPECT_NE(got, 0);
      } else {
        EXPECT_EQ(got, 403) << "with the " << scope << " token";
      }
    }
    ++checked;
  }
  EXPECT_GE(checked, 14);
  HttpClient http(server.url());
  HttpResult denied = http.Request("GET", "/v1/profiles/auth-u", "", {"Authorization: Bearer writer-secret-plain"});
  EXPECT_EQ(denied.status, 403);
  EXPECT_NE(denied.body.find(R"("error":{"code":"forbidden")"), std::string::npos) << denied.body;
  EXPECT_NE(denied.body.find("lacks the read scope"), std::string::npos) << denied.body;
  for (const auto& [_, token] : token_of) {
    EXPECT_EQ(server.output().find(token), std::string::npos) << "a secret in the server's output";
  }
}

TEST(AuthTest, WithoutTokensTheServerSaysItIsOpen) {
  TempDir dir;
  std::string config = WriteExampleConfig(dir.path());
  ServerProcess server(config, dir.path() + "/data");
  ASSERT_TRUE(server.Start()) << server.output();
  EXPECT_NE(server.output().find("no [server] tokens: every route"), std::string::npos) << server.output();
  HttpClient http(server.url());
  EXPECT_EQ(http.Get("/v1/profiles/nobody").status, 404);  // open, as said
}

}  // namespace
}  // namespace portrait::testing_util
