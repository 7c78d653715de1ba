#!/bin/sh
# Regenerates livetabv1 from proto/. Run through `go generate ./codecs`.
# Needs Debian's protoc (package protobuf-compiler); protoc-gen-go is the
# go.mod tool dependency, so the output matches the runtime's version.
set -eu
plugin=$(go tool -n protoc-gen-go)
protoc --plugin=protoc-gen-go="$plugin" \
  --proto_path=proto \
  --go_out=livetabv1 --go_opt=paths=source_relative \
  --go_opt=Mlivetab/v1/livetab.proto=github.com/livetab/livetab/codecs/livetabv1 \
  livetab/v1/livetab.proto
# paths=source_relative mirrors the proto's folders; keep the package flat.
mv livetabv1/livetab/v1/livetab.pb.go livetabv1/livetab.pb.go
rm -r livetabv1/livetab
