// Run alone (world 1: Single() and an MPI singleton) or under mpirun with N ranks. Every rank
// can generate every rank's inputs from a seed, so expected results are computed locally and
// compared bitwise. Only EXPECT_* follows a collective: an early return on one rank would
// leave the others waiting in the next collective.
#include "partitioner/communicator.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/rng.h"
#include "partitioner/mpi_communicator.h"
#include "partitioner/rank_info.h"

namespace spillway {
namespace {

std::unique_ptr<Communicator> mpi_default;
std::unique_ptr<Communicator> mpi_small_messages;

// One MPI initialisation for the whole binary: MPI cannot be initialised again once finalised.
class MpiEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Communicator>> comm = MpiCommunicator::Create();
    ASSERT_TRUE(comm.ok()) << comm.status();
    mpi_default = *std::move(comm);
    // Splits every transfer into many messages and reduction rounds.
    comm = MpiCommunicator::Create({.max_count = 5, .scratch_bytes = 64});
    ASSERT_TRUE(comm.ok()) << comm.status();
    mpi_small_messages = *std::move(comm);
  }
  void TearDown() override {
    mpi_small_messages.reset();
    mpi_default.reset();
  }
};
::testing::Environment* const kMpiEnvironment =
    ::testing::AddGlobalTestEnvironment(new MpiEnvironment);

// Rank `rank`'s input: normal values scaled over 2^-10 .. 2^10, so the sum's bits depend on
// the order of the additions.
std::vector<float> Input(int rank, size_t n, uint64_t seed) {
  Rng rng(seed, static_cast<uint64_t>(rank));
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(rng.Normal() * std::ldexp(1.0, rng.Below(21) - 10));
  return v;
}

// sum[i] = ((in_0[offset + i] + in_1[offset + i]) + ...) over ranks in order.
std::vector<float> RankOrderSum(int world, size_t total, size_t offset, size_t n, uint64_t seed) {
  std::vector<float> sum(n);
  for (int q = 0; q < world; ++q) {
    const std::vector<float> in = Input(q, total, seed);
    for (size_t i = 0; i < n; ++i) sum[i] = q == 0 ? in[offset + i] : sum[i] + in[offset + i];
  }
  return sum;
}

bool BitwiseEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

uint64_t Hash(const void* data, size_t bytes) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (size_t i = 0; i < bytes; ++i)
    h = (h ^ static_cast<const uint8_t*>(data)[i]) * 1099511628211ull;
  return h;
}

enum class Kind { kSingle, kMpi, kMpiSmallMessages };

class CommunicatorTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    switch (GetParam()) {
      case Kind::kSingle:
        single_ = Communicator::Single();
        comm_ = single_.get();
        break;
      case Kind::kMpi:
        comm_ = mpi_default.get();
        break;
      case Kind::kMpiSmallMessages:
        comm_ = mpi_small_messages.get();
        break;
    }
    ASSERT_NE(comm_, nullptr);
    rank_ = comm_->rank();
    world_ = comm_->world_size();
  }

  std::vector<size_t> Sizes() const {
    if (GetParam() == Kind::kMpiSmallMessages) return {0, 1, 3, 7, 64, 1001};
    return {0, 1, 3, 7, 64, 1001, 100003};
  }

  std::unique_ptr<Communicator> single_;
  Communicator* comm_ = nullptr;
  int rank_ = 0;
  int world_ = 1;
};

TEST_P(CommunicatorTest, RankAndWorldSize) {
  EXPECT_GE(rank_, 0);
  EXPECT_LT(rank_, world_);
  if (GetParam() == Kind::kSingle) {
    EXPECT_EQ(rank_, 0);
    EXPECT_EQ(world_, 1);
    return;
  }
  const absl::StatusOr<RankInfo> info = RankInfoFromEnvironment();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->rank, rank_);
  EXPECT_EQ(info->world_size, world_);
}

TEST_P(CommunicatorTest, AllReduceSumIsTheRankOrderSumOnEveryRank) {
  for (size_t n : Sizes()) {
    const uint64_t seed = 100 + n;
    std::vector<float> data = Input(rank_, n, seed);
    EXPECT_TRUE(comm_->AllReduceSum(data.data(), n).ok());
    EXPECT_TRUE(BitwiseEqual(data, RankOrderSum(world_, n, 0, n, seed))) << "n=" << n;
    const absl::StatusOr<bool> same = comm_->AllEqual(Hash(data.data(), n * sizeof(float)));
    EXPECT_TRUE(same.ok() && *same) << "n=" << n;
  }
}

TEST_P(CommunicatorTest, ReduceScatterThenAllGatherEqualsAllReduce) {
  for (size_t n : Sizes()) {
    const uint64_t seed = 200 + n;
    const size_t total = n * world_;
    const std::vector<float> send = Input(rank_, total, seed);
    std::vector<float> part(n, -1.0f);
    EXPECT_TRUE(comm_->ReduceScatterSum(send.data(), part.data(), n).ok());
    EXPECT_TRUE(BitwiseEqual(part, RankOrderSum(world_, total, rank_ * n, n, seed))) << n;

    std::vector<float> gathered(total, -1.0f);
    EXPECT_TRUE(comm_->AllGather(part.data(), gathered.data(), n).ok());
    std::vector<float> reduced = send;
    EXPECT_TRUE(comm_->AllReduceSum(reduced.data(), total).ok());
    EXPECT_TRUE(BitwiseEqual(gathered, reduced)) << "n=" << n;
    EXPECT_TRUE(BitwiseEqual(gathered, RankOrderSum(world_, total, 0, total, seed))) << n;
  }
}

TEST_P(CommunicatorTest, InPlaceReduceScatterAndAllGather) {
  for (size_t n : Sizes()) {
    const uint64_t seed = 300 + n;
    const size_t total = n * world_;
    std::vector<float> data = Input(rank_, total, seed);
    float* own = data.data() + rank_ * n;
    EXPECT_TRUE(comm_->ReduceScatterSum(data.data(), own, n).ok());
    EXPECT_TRUE(comm_->AllGather(own, data.data(), n).ok());
    EXPECT_TRUE(BitwiseEqual(data, RankOrderSum(world_, total, 0, total, seed))) << "n=" << n;
  }
}

TEST_P(CommunicatorTest, AllGatherPlacesEachRanksPart) {
  for (size_t n : Sizes()) {
    const std::vector<float> send = Input(rank_, n, 400 + n);
    std::vector<float> recv(n * world_, -1.0f);
    EXPECT_TRUE(comm_->AllGather(send.data(), recv.data(), n).ok());
    std::vector<float> expected;
    for (int q = 0; q < world_; ++q) {
      const std::vector<float> in = Input(q, n, 400 + n);
      expected.insert(expected.end(), in.begin(), in.end());
    }
    EXPECT_TRUE(BitwiseEqual(recv, expected)) << "n=" << n;
  }
}

TEST_P(CommunicatorTest, BroadcastFromTheLastRank) {
  const int root = world_ - 1;
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{13}, size_t{10007}}) {
    std::vector<uint8_t> data(bytes, static_cast<uint8_t>(rank_));
    Rng rng(bytes);
    std::vector<uint8_t> expected(bytes);
    for (uint8_t& b : expected) b = static_cast<uint8_t>(rng.NextU64());
    if (rank_ == root) data = expected;
    EXPECT_TRUE(comm_->Broadcast(data.data(), bytes, root).ok());
    EXPECT_EQ(data, expected) << "bytes=" << bytes;
  }
  uint8_t byte = 0;
  EXPECT_EQ(comm_->Broadcast(&byte, 1, world_).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(comm_->Broadcast(&byte, 1, -1).code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(CommunicatorTest, SendRecvRing) {
  uint8_t byte = 0;
  EXPECT_EQ(comm_->Send(&byte, 1, rank_, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(comm_->Recv(&byte, 1, world_, 0).code(), absl::StatusCode::kInvalidArgument);
  if (world_ == 1) return;
  EXPECT_EQ(comm_->Send(&byte, 1, (rank_ + 1) % world_, -1).code(),
            absl::StatusCode::kInvalidArgument);
  const int next = (rank_ + 1) % world_, prev = (rank_ + world_ - 1) % world_;
  int tag = 0;
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{10001}}) {
    ++tag;
    const auto payload = [bytes](int from) {
      std::vector<uint8_t> v(bytes);
      for (size_t i = 0; i < bytes; ++i) v[i] = static_cast<uint8_t>(i * 7 + from * 31);
      return v;
    };
    const std::vector<uint8_t> out = payload(rank_);
    std::vector<uint8_t> in(bytes, 0xAB);
    // Odd ranks receive first, so the ring cannot deadlock on blocking sends.
    if (rank_ % 2 == 1) {
      EXPECT_TRUE(comm_->Recv(in.data(), bytes, prev, tag).ok());
    }
    EXPECT_TRUE(comm_->Send(out.data(), bytes, next, tag).ok());
    if (rank_ % 2 == 0) {
      EXPECT_TRUE(comm_->Recv(in.data(), bytes, prev, tag).ok());
    }
    EXPECT_EQ(in, payload(prev)) << "bytes=" << bytes;
  }
}

TEST_P(CommunicatorTest, RecvOfAnotherSizeIsAnError) {
  // One message each way; with split messages a size mismatch would leave parts unmatched.
  if (world_ == 1 || GetParam() != Kind::kMpi) return;
  char buffer[16] = {};
  for (size_t recv_bytes : {size_t{16}, size_t{4}}) {
    if (rank_ == 0) {
      EXPECT_TRUE(comm_->Send(buffer, 8, 1, 7).ok());
    }
    if (rank_ == 1) {
      const absl::Status status = comm_->Recv(buffer, recv_bytes, 0, 7);
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    }
  }
  EXPECT_TRUE(comm_->Barrier().ok());
}

TEST_P(CommunicatorTest, AllEqual) {
  for (uint64_t value : {uint64_t{0}, uint64_t{0x5eed}, ~uint64_t{0}}) {
    const absl::StatusOr<bool> same = comm_->AllEqual(value);
    EXPECT_TRUE(same.ok() && *same);
  }
  const absl::StatusOr<bool> last_differs = comm_->AllEqual(rank_ == world_ - 1 ? ~0ull : 0ull);
  ASSERT_TRUE(last_differs.ok()) << last_differs.status();
  EXPECT_EQ(*last_differs, world_ == 1);
  const absl::StatusOr<bool> by_rank = comm_->AllEqual(static_cast<uint64_t>(rank_));
  ASSERT_TRUE(by_rank.ok()) << by_rank.status();
  EXPECT_EQ(*by_rank, world_ == 1);
}

TEST_P(CommunicatorTest, ZeroLengthCallsNeedNoBuffers) {
  EXPECT_TRUE(comm_->AllReduceSum(nullptr, 0).ok());
  EXPECT_TRUE(comm_->AllGather(nullptr, nullptr, 0).ok());
  EXPECT_TRUE(comm_->ReduceScatterSum(nullptr, nullptr, 0).ok());
  EXPECT_TRUE(comm_->Broadcast(nullptr, 0, 0).ok());
  EXPECT_TRUE(comm_->Barrier().ok());
  EXPECT_EQ(comm_->AllReduceSum(nullptr, 1).code(), absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(All, CommunicatorTest,
                         ::testing::Values(Kind::kSingle, Kind::kMpi, Kind::kMpiSmallMessages),
                         [](const ::testing::TestParamInfo<Kind>& info) -> std::string {
                           switch (info.param) {
                             case Kind::kSingle:
                               return "Single";
                             case Kind::kMpi:
                               return "Mpi";
                             case Kind::kMpiSmallMessages:
                               return "MpiSmallMessages";
                           }
                           return "";
                         });

TEST(SingleCommunicatorTest, IsWorldOfOne) {
  std::unique_ptr<Communicator> single = Communicator::Single();
  EXPECT_EQ(single->rank(), 0);
  EXPECT_EQ(single->world_size(), 1);
  std::vector<float> data = {1.5f, -2.0f};
  EXPECT_TRUE(single->AllReduceSum(data.data(), 2).ok());
  EXPECT_EQ(data, (std::vector<float>{1.5f, -2.0f}));
  std::vector<float> out(2);
  EXPECT_TRUE(single->AllGather(data.data(), out.data(), 2).ok());
  EXPECT_EQ(out, data);
  out.assign(2, 0.0f);
  EXPECT_TRUE(single->ReduceScatterSum(data.data(), out.data(), 2).ok());
  EXPECT_EQ(out, data);
  EXPECT_TRUE(single->Broadcast(data.data(), 8, 0).ok());
  EXPECT_EQ(single->Broadcast(data.data(), 8, 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(single->Send(data.data(), 8, 0, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(single->Recv(data.data(), 8, 0, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(single->Barrier().ok());
  EXPECT_TRUE(*single->AllEqual(42));
}

}  // namespace
}  // namespace spillway
