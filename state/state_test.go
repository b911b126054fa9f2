package state

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestStores runs the same transactions on the state file and on the
// in-memory store the tests use: they must not differ.
func TestStores(t *testing.T) {
	stores := map[string]func(t *testing.T) Store{
		"bbolt": func(t *testing.T) Store {
			s, err := Open(filepath.Join(t.TempDir(), "state"), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"memory": func(*testing.T) Store { return NewMemory() },
	}
	pools := []string{"ipam", "pools"}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			defer s.Close()
			if err := s.Update(func(tx Tx) error {
				for _, p := range []string{"b", "a", "c"} {
					if err := tx.Put(append(pools, p), []byte("meta"), []byte(p)); err != nil {
						return err
					}
				}
				return tx.Put(pools, []byte("k"), []byte("v"))
			}); err != nil {
				t.Fatal(err)
			}
			boom := errors.New("boom")
			if err := s.Update(func(tx Tx) error {
				if err := tx.DeleteBucket(append(pools, "a")); err != nil {
					return err
				}
				if err := tx.Put(pools, []byte("k"), []byte("changed")); err != nil {
					return err
				}
				return boom
			}); !errors.Is(err, boom) {
				t.Fatalf("failed update: %v", err)
			}
			err := s.View(func(tx Tx) error {
				var names []string
				_ = tx.Buckets(pools, func(n string) error { names = append(names, n); return nil })
				if !slices.Equal(names, []string{"a", "b", "c"}) {
					t.Errorf("buckets after a failed update = %v, want a b c in order", names)
				}
				var keys []string
				_ = tx.ForEach(pools, func(k, _ []byte) error { keys = append(keys, string(k)); return nil })
				if !slices.Equal(keys, []string{"k"}) {
					t.Errorf("keys of %v = %v, want only k (child buckets are not keys)", pools, keys)
				}
				if v := tx.Get(pools, []byte("k")); string(v) != "v" {
					t.Errorf("k = %q after a failed update, want v", v)
				}
				if tx.Get([]string{"nothing", "here"}, []byte("k")) != nil || tx.HasBucket([]string{"nothing"}) {
					t.Error("a missing bucket has contents")
				}
				if err := tx.Put(pools, []byte("x"), nil); !errors.Is(err, ErrReadOnly) {
					t.Errorf("write in View: %v, want ErrReadOnly", err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Update(func(tx Tx) error {
				if err := tx.DeleteBucket(append(pools, "b")); err != nil {
					return err
				}
				if err := tx.DeleteBucket([]string{"none"}); err != nil {
					return err
				}
				return tx.Delete(pools, []byte("k"))
			}); err != nil {
				t.Fatal(err)
			}
			_ = s.View(func(tx Tx) error {
				if tx.HasBucket(append(pools, "b")) || !tx.HasBucket(append(pools, "c")) || tx.Get(pools, []byte("k")) != nil {
					t.Error("deletes did not take, or took too much")
				}
				return nil
			})
		})
	}
}
