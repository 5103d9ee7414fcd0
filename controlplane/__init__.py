"""ServeML's control plane: the API, the build pipeline and the warmer, as Lambda handlers."""
