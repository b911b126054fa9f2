package cluster

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/dualstack-net/dualstack/state"
)

// Identity.
//
// A node name (CLUSTER_NODE) is only a name: two hosts may be given the
// same one (the default is the hostname, and cloned machines share it). So
// each host also has a secret token, made once and kept in its state file
// (LoadToken). The store never holds the token itself:
//
//   - the node record carries a hash of it ("identity"), so that a host
//     starting under a name that another live host registered with another
//     identity is refused (*NameTakenError) instead of sharing its blocks;
//   - every block and claim key holds, beside the holder's name, a proof
//     that only the holder can make: an HMAC of the key under the token.
//     A host takes a block for its own (adopts it at start, keeps
//     allocating from it) only when the proof is its own, so a holder
//     written by hand, or by another host of the same name, is never
//     mistaken for its own. Releases compare the whole value, proof
//     included, in their transaction.
//
// Leases and claims are also conditioned on the node key being on this
// host's current lease: a host whose registration was lost, or was never
// made, writes nothing.

// identityBucket and identityKey are where LoadToken keeps the token in
// the state file.
var (
	identityBucket = []string{"cluster"}
	identityKey    = []byte("identity")
)

// LoadToken returns the host's secret token from the state file, making
// and recording one on first use.
func LoadToken(db state.Store) (string, error) {
	var token string
	err := db.Update(func(tx state.Tx) error {
		if v := tx.Get(identityBucket, identityKey); len(v) > 0 {
			token = string(v)
			return nil
		}
		token = NewToken()
		return tx.Put(identityBucket, identityKey, []byte(token))
	})
	if err != nil {
		return "", fmt.Errorf("the cluster identity of this host in the state file: %w", err)
	}
	return token, nil
}

// NewToken returns a new random token: 32 bytes, hex.
func NewToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// identityOf is the identity a token shows in the node record: a hash
// that does not give the token away.
func identityOf(token string) string {
	h := sha256.Sum256([]byte("dualstack node identity\x00" + token))
	return hex.EncodeToString(h[:16])
}

// proof is the proof of holding key that only the holder of token makes.
func proof(token, key string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte(key))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// holderRecord is the value of a block or claim key.
type holderRecord struct {
	Node  string `json:"node"`
	Proof string `json:"proof"`
}

// holderValue is the value this node writes in key.
func (s *Store) holderValue(key string) string {
	v, _ := json.Marshal(holderRecord{Node: s.cfg.Node, Proof: proof(s.cfg.Token, key)})
	return string(v)
}

// parseHolder reads the value of a block or claim key: a holderRecord, or
// (written before identities) the bare node name, whose proof is "".
func parseHolder(v []byte) (node, prf string, err error) {
	if bytes.HasPrefix(v, []byte("{")) {
		var r holderRecord
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return "", "", fmt.Errorf("not a holder record: %v", err)
		}
		if err := validNode(r.Node); err != nil {
			return "", "", err
		}
		if len(r.Proof) != 32 || strings.ToLower(r.Proof) != r.Proof {
			return "", "", fmt.Errorf("proof %q is not 32 lowercase hex digits", r.Proof)
		}
		return r.Node, r.Proof, nil
	}
	if err := validNode(string(v)); err != nil {
		return "", "", err
	}
	return string(v), "", nil
}

// mine reports whether value of key says this node holds it under its
// identity.
func (s *Store) mine(key string, value []byte) bool {
	node, prf, err := parseHolder(value)
	return err == nil && node == s.cfg.Node && hmac.Equal([]byte(prf), []byte(proof(s.cfg.Token, key)))
}

// NameTakenError is the refusal of a host that starts under a node name
// another live host registered with another identity.
type NameTakenError struct {
	Node string
	// Theirs are the addresses the other host registered, Ours this
	// host's.
	Theirs, Ours []netip.Addr
	// Since is when the other host registered.
	Since string
}

func (e *NameTakenError) Error() string {
	return fmt.Sprintf("node name %s is taken: the host at %s registered it (since %s) with another identity; this host (%s) stays out of the cluster, its cluster networks cannot lease blocks or claim addresses: give each host a name of its own with `docker plugin set dualstack CLUSTER_NODE=NAME` (the plugin disabled); if the other registration is this host's own from before its state file was lost, it expires within the node TTL",
		e.Node, addrList(e.Theirs), orNone(e.Since), addrList(e.Ours))
}
