// Package cluster lets several Docker hosts share the address space of a
// cluster network through etcd.
//
// # Design
//
// A cluster network's subnets are cut into blocks: aligned prefixes of a
// fixed length per family (the definition's host_block4 and host_block6,
// for example /26 of an IPv4 subnet and /80 of an IPv6 subnet). A host
// leases blocks from etcd when it needs room and allocates addresses inside
// its own blocks locally, without asking etcd again; a static address
// outside the host's blocks is claimed in etcd on its own. This is the
// scheme of flannel's per-host subnet leases and Calico's IPAM blocks.
//
// The invariant above all is that two hosts never hold one address, whatever
// fails. Every write that takes address space is one etcd transaction whose
// compares prove that nothing overlapping exists (a block key, any block or
// claim key inside the block's key range, the block keys that could enclose
// an address); a host that loses a race sees the transaction fail and moves
// on. Blocks and claims are not on a lease: a host that dies or is
// partitioned away keeps its blocks, because it may still be running
// containers in them. Only Forget, refused while the host's node key exists,
// frees them.
//
// Liveness is separate: each host keeps a node key on a lease of TTL
// seconds (default 15). Other hosts use it to tell live holders from dead
// ones and to learn the addresses to route a holder's blocks to (host-gw).
// Open never blocks on etcd: registration runs in the background and
// starts over whenever the lease is lost.
//
// When the store is unreachable, calls fail within Config.Timeout with an
// error matching ErrUnreachable that names the endpoints; containers still
// start as long as the host's blocks have room.
//
// Only the KV, Txn, Lease and Watch APIs are used (range compares included),
// so etcd 3.4 and later work.
//
// # Key layout
//
// Every key is under a prefix, by default /dualstack/v1/:
//
//	nodes/<node>                       {"addresses":["198.51.100.2","fd00:1::2"],"since":"2025-01-02T03:04:05Z","identity":"<hash>"}
//	                                   on the node's lease: present while the node is alive
//	networks/<name>/definition         JSON of the Definition, written once by the first host
//	                                   (with "defined_by" and "defined_at")
//	networks/<name>/blocks/<block>     {"node":"<node>","proof":"<hmac>"}: the node holding the block; no lease
//	networks/<name>/claims/<address>   the same, for that single address; no lease
//
// The identity and the proofs are explained in identity.go ("Identity"),
// and what a host checks of what it reads in validate.go.
//
// <address> is the address's bytes as fixed-width lowercase hex: 8 digits
// for IPv4 (198.18.0.64 is c6120040), 32 for IPv6 (fd00:1::2 is
// fd000001000000000000000000000002). Fixed width makes key order address
// order within a family, so "any claim inside this block" is one range
// compare. <block> is the block's first address in that form, "_" and the
// prefix length: 198.18.0.64/26 is c6120040_26. See AddrKey and BlockKey.
//
// A block is normally of the host block length; when the ip range that
// blocks are cut from is smaller than a host block, the range is one block
// of its own length. A network's definition is removed (Undefine, Forget)
// only when no block and no claim of it remains. LeaseBlock and Claim check
// each request against the recorded definition (the subnet, the host block
// length) and make their transaction depend on that definition still being
// the same one, so all of a network's blocks are cut by one definition even
// if it is removed and recorded anew meanwhile.
package cluster
