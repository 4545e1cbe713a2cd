"""Generated stubs for tradetrust.chat.v1 (see protos/). Do not edit the generated modules."""
