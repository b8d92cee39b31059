// kernels: gemm (being written)
