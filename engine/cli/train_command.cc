#include <cstdio>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "engine/cli/args.h"
#include "engine/cli/commands.h"
#include "engine/config/config.h"
#include "engine/train/trainer.h"
#include "partitioner/mpi_communicator.h"
#include "partitioner/rank_info.h"

namespace spillway {
namespace {

// One rank, or MPI's ranks when a launcher (mpirun, srun, torchrun) started several.
absl::StatusOr<std::unique_ptr<Communicator>> MakeCommunicator() {
  SPW_ASSIGN_OR_RETURN(RankInfo ranks, RankInfoFromEnvironment());
  if (ranks.world_size == 1) return Communicator::Single();
  return MpiCommunicator::Create();
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "spillway: %s\n", std::string(status.message()).c_str());
  return kExitFailure;
}

// With several ranks, a rank that fails ends the whole job: the others may be waiting for it
// in a collective.
int FailRank(const Communicator& comm, const absl::Status& status) {
  const int code = Fail(status);
  if (comm.world_size() > 1) {
    std::fflush(nullptr);
    MpiCommunicator::AbortJob(code);
  }
  return code;
}

}  // namespace

const char kTrainUsage[] =
    "usage: spillway train CONFIG [--resume DIR]\n"
    "  Trains the model described by the JSON config CONFIG (keys: docs/config.md).\n"
    "  Under mpirun -np N, N ranks train data-parallel (zero_optimization): CPU ranks, or\n"
    "  one GPU per rank with trainer.backend = \"cuda\". With pipeline.stages = p the\n"
    "  ranks form p pipeline stages (x N/p data-parallel replicas; docs/pipeline.md).\n"
    "  A failing rank ends the job.\n"
    "  --resume DIR   continue from a checkpoint: a step directory, or a checkpoint root\n"
    "                 (checkpoint.dir) whose newest complete checkpoint is used\n";

const char kEvalUsage[] =
    "usage: spillway eval CONFIG [--checkpoint DIR]\n"
    "  Prints the validation loss over trainer.eval_batches micro-batches, of the checkpoint\n"
    "  DIR (a step directory or a checkpoint root), or of the freshly initialised model.\n";

int TrainCommand(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = ParseArgs(argv, {"resume"});
  if (!args.ok() || args->positional.size() != 1) {
    std::fprintf(stderr, "%s%s",
                 args.ok() ? "" : (std::string(args.status().message()) + "\n").c_str(),
                 kTrainUsage);
    return kExitUsage;
  }
  absl::StatusOr<std::unique_ptr<Communicator>> comm = MakeCommunicator();
  if (!comm.ok()) return Fail(comm.status());
  absl::StatusOr<Config> config = LoadConfig(args->positional[0], (*comm)->world_size());
  if (!config.ok()) return Fail(config.status());
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*config, stdout, comm->get());
  if (!trainer.ok()) return FailRank(**comm, trainer.status());
  if (args->Has("resume")) {
    if (absl::Status s = (*trainer)->Resume(args->Get("resume")); !s.ok()) {
      return FailRank(**comm, s);
    }
  }
  if (absl::Status s = (*trainer)->Train(); !s.ok()) return FailRank(**comm, s);
  return kExitOk;
}

int EvalCommand(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = ParseArgs(argv, {"checkpoint"});
  if (!args.ok() || args->positional.size() != 1) {
    std::fprintf(stderr, "%s%s",
                 args.ok() ? "" : (std::string(args.status().message()) + "\n").c_str(),
                 kEvalUsage);
    return kExitUsage;
  }
  absl::StatusOr<Config> config = LoadConfig(args->positional[0]);
  if (!config.ok()) return Fail(config.status());
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*config);
  if (!trainer.ok()) return Fail(trainer.status());
  if (args->Has("checkpoint")) {
    if (absl::Status s = (*trainer)->LoadParams(args->Get("checkpoint")); !s.ok()) return Fail(s);
  }
  absl::StatusOr<double> loss = (*trainer)->Evaluate();
  if (!loss.ok()) return Fail(loss.status());
  std::printf("val loss %.4f\n", *loss);
  return kExitOk;
}

}  // namespace spillway
