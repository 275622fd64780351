"""Analysis kernels that run on a TransformerBridge model."""
