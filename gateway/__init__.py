"""TradeTrust chat gateway: a gRPC service in front of GetStream.io Chat."""
