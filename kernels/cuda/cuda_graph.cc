#include "kernels/cuda/cuda_graph.h"

#include <utility>

#include "core/cuda_status.h"

namespace spillway::kernels::cuda {
namespace {

class CudaGraph final : public OpsGraph {
 public:
  CudaGraph(cudaGraphExec_t exec, cudaStream_t stream) : exec_(exec), stream_(stream) {}
  ~CudaGraph() override { cudaGraphExecDestroy(exec_); }
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  absl::Status Replay() override { return CudaStatus(cudaGraphLaunch(exec_, stream_), "Replay"); }

 private:
  cudaGraphExec_t exec_;
  cudaStream_t stream_;
};

}  // namespace

absl::Status BeginStreamCapture(cudaStream_t stream) {
  // Relaxed: the ops may look up cached state (kernel attributes, cuBLASLt plans) meanwhile.
  return CudaStatus(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed),
                    "cudaStreamBeginCapture");
}

absl::StatusOr<std::unique_ptr<OpsGraph>> EndStreamCapture(cudaStream_t stream) {
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream, &graph);
  (void)cudaGetLastError();  // a launch refused during the capture is the capture's failure
  SPW_CUDA_CHECK(ended);
  cudaGraphExec_t exec = nullptr;
  const cudaError_t instantiated = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  SPW_CUDA_CHECK(instantiated);
  return std::make_unique<CudaGraph>(exec, stream);
}

}  // namespace spillway::kernels::cuda
