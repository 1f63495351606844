"""simple_knn._C.distCUDA2(points (N,3) CUDA) -> (N,): mean squared distance to the 3 nearest
neighbours (self excluded), used to initialise Gaussian scales."""
