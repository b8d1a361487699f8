// Runs a libFuzzer target without libFuzzer: every file of a seed corpus, then a fixed
// number of deterministic mutations of them (byte flips, truncations, splices, inserted
// JSON punctuation). Used by ctest in ordinary builds; the `fuzz` preset links the same
// targets with -fsanitize=fuzzer for real coverage-guided fuzzing.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR [ITERATIONS]\n", argv[0]);
    return 2;
  }
  std::vector<std::string> seeds;
  for (const auto& entry : std::filesystem::directory_iterator(argv[1])) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    seeds.push_back(ss.str());
  }
  if (seeds.empty()) {
    std::fprintf(stderr, "no seeds in %s\n", argv[1]);
    return 2;
  }
  long iterations = argc > 2 ? std::atol(argv[2]) : 20000;
  auto run = [](const std::string& s) { LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size()); };
  for (const auto& s : seeds) run(s);
  std::mt19937_64 rng(12345);
  const char kPunct[] = "{}[]\",:\\\n 0-9eE.tfn\x00\xff";
  for (long i = 0; i < iterations; ++i) {
    std::string s = seeds[rng() % seeds.size()];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
      switch (rng() % 5) {
        case 0: if (!s.empty() && pos < s.size()) s[pos] = static_cast<char>(rng()); break;
        case 1: s.resize(pos); break;
        case 2: s.insert(pos, 1, kPunct[rng() % (sizeof kPunct - 1)]); break;
        case 3: { const std::string& o = seeds[rng() % seeds.size()]; s.insert(pos, o.substr(0, rng() % (o.size() + 1))); break; }
        case 4: if (pos < s.size()) s.erase(pos, 1 + rng() % 8); break;
      }
    }
    run(s);
  }
  std::printf("%zu seeds, %ld mutations: no crash\n", seeds.size(), iterations);
  return 0;
}
