// The MPI communicator over every rank of a test started under mpirun, created once.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <utility>

#include "partitioner/mpi_communicator.h"

namespace spillway::testing_util {

inline Communicator& World() {
  static std::unique_ptr<Communicator> comm = [] {
    absl::StatusOr<std::unique_ptr<Communicator>> c = MpiCommunicator::Create();
    EXPECT_TRUE(c.ok()) << c.status();
    return std::move(c).value();
  }();
  return *comm;
}

}  // namespace spillway::testing_util
