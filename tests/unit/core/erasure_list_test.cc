#include "core/erasure_list.h"

#include <gtest/gtest.h>

#include <fstream>

#include "temp_dir.h"

namespace portrait {
namespace {

TEST(ErasureListTest, KeepsAnyIdBytesAcrossReopenAndSeesOtherWriters) {
  testing_util::TempDir dir;
  std::string path = dir.path() + "/sub/erasures.list";
  auto a = ErasureList::Open(path);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  std::string odd = std::string("x\t\n\x1f{}", 6) + std::string(1, '\0') + "\xff";
  const std::string ids[] = {"u1", odd};
  ASSERT_TRUE((*a)->Add(ids, 1000).ok());
  EXPECT_EQ((*a)->ErasedAt(odd), 1000);
  EXPECT_FALSE((*a)->ErasedAt("u2"));

  auto b = ErasureList::Open(path);  // another process
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->ErasedAt("u1"), 1000);
  EXPECT_EQ((*b)->ErasedAt(odd), 1000);
  const std::string later[] = {"u1", "u2"};
  ASSERT_TRUE((*b)->Add(later, 2000).ok());
  ASSERT_TRUE((*a)->Refresh().ok());
  EXPECT_EQ((*a)->ErasedAt("u1"), 2000) << "the newest erasure counts";
  EXPECT_EQ((*a)->ErasedAt("u2"), 2000);

  // The same erasure again (a replay) adds nothing; an older one neither.
  ASSERT_TRUE((*a)->Add(later, 2000).ok());
  ASSERT_TRUE((*a)->Add(later, 1500).ok());
  EXPECT_EQ((*a)->Entries().size(), 4u);
}

TEST(ErasureListTest, ATornLastLineIsIgnoredUntilItIsWhole) {
  testing_util::TempDir dir;
  std::string path = dir.path() + "/erasures.list";
  {
    auto a = ErasureList::Open(path);
    ASSERT_TRUE(a.ok());
    const std::string ids[] = {"u1"};
    ASSERT_TRUE((*a)->Add(ids, 7).ok());
  }
  std::ofstream(path, std::ios::app) << "9\t7532";  // "u2" cut short by a crash
  auto b = ErasureList::Open(path);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->Entries().size(), 1u);
  std::ofstream(path, std::ios::app) << "\n";
  ASSERT_TRUE((*b)->Refresh().ok());
  EXPECT_EQ((*b)->ErasedAt("u2"), 9);
}

}  // namespace
}  // namespace portrait
