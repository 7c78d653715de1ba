package liveview_test

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/liveview"
)

// tag is a field's tag.
func tag(num protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, num, typ) }

// field is a length-delimited field.
func field(num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// inputRecords are loop records, valid or not, of every shape ReadInput
// reads, and invalid at each level it checks. codecs' tests of
// codecs.Checker probe in full what proto.Unmarshal accepts.
func inputRecords(t testing.TB) map[string][]byte {
	ev := &livetabv1.Event{Id: "e1", Account: "acme", Session: "app", Name: "install", ReceivedUs: 5, DeviceIds: []string{"d"},
		Params: map[string]string{"k": "v"}, Request: &livetabv1.Request{Ip: "1", Params: map[string]string{"a": "b"}}}
	h := &livetabv1.Hit{Id: "h1", Account: "acme", Session: "web", ReceivedUs: 7, Request: &livetabv1.Request{UserAgent: "ua"}}
	bad := []byte{'a', 0xff}
	idAndAccount := cat(field(1, []byte("e1")), field(2, []byte("acme")))
	return map[string][]byte{
		"empty":                     nil,
		"hit":                       marshal(t, inHit(h)),
		"event":                     marshal(t, inEvent(ev)),
		"conversion":                marshal(t, inConv(conversion("e1", "app"))),
		"empty hit":                 field(1, nil),
		"payload field as varint":   cat(tag(1, protowire.VarintType), []byte{1}),
		"unknown group":             cat(marshal(t, inHit(h)), tag(9, protowire.StartGroupType), field(1, []byte("x")), tag(9, protowire.EndGroupType)),
		"largest field number":      cat(marshal(t, inHit(h)), protowire.AppendVarint(tag(protowire.MaxValidNumber, protowire.VarintType), 1)),
		"merged hit":                cat(field(1, idAndAccount), field(1, cat(field(6, []byte("web")), field(1, []byte("h2"))))),
		"hit replaced by event":     cat(marshal(t, inHit(h)), marshal(t, inEvent(ev))),
		"event fields twice":        field(2, cat(marshal(t, ev), field(4, []byte("open")), protowire.AppendVarint(tag(6, protowire.VarintType), 9))),
		"field number too large":    cat(marshal(t, inHit(h)), protowire.AppendVarint(protowire.AppendVarint(nil, uint64(protowire.MaxValidNumber+1)<<3), 1)),
		"truncated payload":         cat(tag(2, protowire.BytesType), []byte{50}, idAndAccount),
		"param value not UTF-8":     field(2, cat(idAndAccount, field(11, field(2, bad)))),
		"conversion not UTF-8":      field(3, cat(idAndAccount, field(4, bad))),
		"merged hit, bad second":    cat(field(1, idAndAccount), field(1, field(6, bad))),
		"bad hit replaced by event": cat(field(1, field(6, bad)), marshal(t, inEvent(ev))),
	}
}

// checkReadInput reports whether ReadInput agrees with proto.Unmarshal on
// record: both fail, or both succeed and the Input is what the decoded
// record holds.
func checkReadInput(t *testing.T, name string, record []byte) {
	t.Helper()
	in, err := liveview.ReadInput(record)
	var vin livetabv1.ViewInput
	uerr := proto.Unmarshal(record, &vin)
	if (err == nil) != (uerr == nil) {
		t.Fatalf("%s (%x): ReadInput error %v, proto.Unmarshal error %v", name, record, err, uerr)
	}
	if err != nil {
		if !errors.Is(err, codecs.ErrDecode) {
			t.Errorf("%s: error %v does not wrap codecs.ErrDecode", name, err)
		}
		return
	}
	want := liveview.Input{}
	var payload proto.Message
	switch {
	case vin.GetHit() != nil:
		h := vin.GetHit()
		want = liveview.Input{Kind: livetabv1.Kind_KIND_HIT, ID: h.GetId(), Account: h.GetAccount(), Session: h.GetSession(), ReceivedUs: h.GetReceivedUs()}
		payload = h
	case vin.GetEvent() != nil:
		e := vin.GetEvent()
		want = liveview.Input{Kind: livetabv1.Kind_KIND_EVENT, ID: e.GetId(), Account: e.GetAccount(), Session: e.GetSession(), ReceivedUs: e.GetReceivedUs(), Name: e.GetName()}
		payload = e
	case vin.GetConversion() != nil:
		c := vin.GetConversion()
		want = liveview.Input{Kind: livetabv1.Kind_KIND_CONVERSION, ID: c.GetId(), Account: c.GetAccount(), Session: c.GetAppSession(), ReceivedUs: c.GetReceivedUs()}
		payload = c
		if !proto.Equal(in.Conversion, c) {
			t.Errorf("%s: conversion %v, want %v", name, in.Conversion, c)
		}
	}
	if got := in; got.Kind != want.Kind || got.ID != want.ID || got.Account != want.Account || got.Session != want.Session ||
		got.ReceivedUs != want.ReceivedUs || got.Name != want.Name {
		t.Errorf("%s: read %+v, want %+v", name, got, want)
	}
	if payload != nil {
		decoded := payload.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(in.Payload, decoded); err != nil || !proto.Equal(decoded, payload) {
			t.Errorf("%s: payload decodes to %v (%v), want %v", name, decoded, err, payload)
		}
	} else if in.Payload != nil {
		t.Errorf("%s: payload %x of a record without one", name, in.Payload)
	}
}

// TestReadInputAgreesWithUnmarshal: ReadInput fails where proto.Unmarshal
// does, and otherwise reads what the decoded record holds.
func TestReadInputAgreesWithUnmarshal(t *testing.T) {
	failures := 0
	for name, r := range inputRecords(t) {
		checkReadInput(t, name, r)
		if proto.Unmarshal(r, &livetabv1.ViewInput{}) != nil {
			failures++
		}
	}
	if failures < 6 {
		t.Fatalf("only %d records are invalid: the table lost its point", failures)
	}
}

// FuzzReadInput: `go test -fuzz FuzzReadInput ./processors/liveview` looks
// for a record on which ReadInput and proto.Unmarshal disagree, on what
// fails or on what is read.
func FuzzReadInput(f *testing.F) {
	for _, r := range inputRecords(f) {
		f.Add(r)
	}
	f.Fuzz(func(t *testing.T, record []byte) { checkReadInput(t, "fuzzed", record) })
}
