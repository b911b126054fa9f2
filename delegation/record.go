package delegation

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/dualstack-net/dualstack/state"
)

// bucket holds one record per uplink, keyed by the uplink's name: the
// Lease as JSON (our DUID and IAID among it).
var bucket = []string{"delegation"}

// loadRecord returns uplink's record, and whether there is one.
func loadRecord(db state.Store, uplink string) (Lease, bool, error) {
	var l Lease
	var found bool
	err := db.View(func(tx state.Tx) error {
		v := tx.Get(bucket, []byte(uplink))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &l)
	})
	if err != nil {
		return Lease{}, false, fmt.Errorf("read the delegated prefix record of uplink %s from the state file: %w "+
			"(delete key %q of bucket %q to start afresh)", uplink, err, uplink, bucket[0])
	}
	return l, found, nil
}

// saveRecord writes l as its uplink's record.
func saveRecord(db state.Store, l Lease) error {
	v, err := json.Marshal(l)
	if err != nil {
		return err
	}
	err = db.Update(func(tx state.Tx) error { return tx.Put(bucket, []byte(l.Uplink), v) })
	if err != nil {
		return fmt.Errorf("write the delegated prefix record of uplink %s to the state file: %w", l.Uplink, err)
	}
	return nil
}

// forgetRecord removes uplink's record.
func forgetRecord(db state.Store, uplink string) error {
	err := db.Update(func(tx state.Tx) error { return tx.Delete(bucket, []byte(uplink)) })
	if err != nil {
		return fmt.Errorf("remove the delegated prefix record of uplink %s from the state file: %w", uplink, err)
	}
	return nil
}

// newIdentity returns the DUID (hex) and IAID of a client on uplink: the
// DUID-LL of the uplink's MAC address (DUID-UUID, random, for a link
// without one), the IAID FNV-32a of the uplink's name. Both are the same
// for the same uplink after a lost state file.
func newIdentity(uplink string) (duid string, iaid uint32, err error) {
	ifc, err := net.InterfaceByName(uplink)
	if err != nil {
		return "", 0, fmt.Errorf("uplink %s for a delegated prefix: %w (name an existing interface of the host)", uplink, err)
	}
	var d dhcpv6.DUID
	if len(ifc.HardwareAddr) > 0 {
		d = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: ifc.HardwareAddr}
	} else {
		u := &dhcpv6.DUIDUUID{}
		if _, err := rand.Read(u.UUID[:]); err != nil {
			return "", 0, err
		}
		d = u
	}
	h := fnv.New32a()
	h.Write([]byte(uplink))
	return hex.EncodeToString(d.ToBytes()), h.Sum32(), nil
}

// parseDUID reads a DUID written in hex.
func parseDUID(s string) (dhcpv6.DUID, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, err
	}
	return dhcpv6.DUIDFromBytes(b)
}
