"""The gRPC edge: servicer, interceptors and server assembly."""
