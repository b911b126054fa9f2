module github.com/dualstack-net/dualstack/bench/ipamcompare

go 1.26.8

require (
	github.com/dualstack-net/dualstack v0.0.0
	github.com/moby/moby/v2 v2.0.0-beta.24
)

require (
	github.com/containerd/errdefs v1.0.0 // indirect
	github.com/containerd/log v0.2.0 // indirect
	github.com/google/btree v1.1.3 // indirect
	github.com/ishidawataru/sctp v0.0.0-20251114114122-19ddcbc6aae2 // indirect
	github.com/moby/moby/api v1.56.0 // indirect
	github.com/sirupsen/logrus v1.10.2 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace github.com/dualstack-net/dualstack => ../..
