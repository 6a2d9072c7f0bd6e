#include "kernels/backend.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace spillway::kernels {
namespace {

TEST(BackendTest, CreatesCpu) {
  auto ops = CreateOps("cpu");
  ASSERT_TRUE(ops.ok()) << ops.status();
  EXPECT_EQ((*ops)->name(), "cpu");
  EXPECT_TRUE((*ops)->Synchronize().ok());
}

TEST(BackendTest, RejectsUnknownBackend) {
  auto ops = CreateOps("tpu");
  ASSERT_FALSE(ops.ok());
  EXPECT_EQ(ops.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ops.status().message(), testing::HasSubstr("tpu"));
  EXPECT_THAT(ops.status().message(), testing::HasSubstr("cpu"));
}

}  // namespace
}  // namespace spillway::kernels
