// Command interop drives a Consul-compatible agent through the official Go
// client github.com/hashicorp/consul/api and prints exactly one line per step:
// "OK <step>" or "FAIL <step>: <reason>". It exits 1 if any step failed.
//
// The agent address comes from CONSUL_HTTP_ADDR (read by api.DefaultConfig),
// the number of servers in the cluster from INTEROP_SERVERS (default 1).
package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/consul/api/watch"
)

const (
	prefix      = "interop-go/"
	serviceName = "interop-web"
	serviceID   = "interop-web-1"
	ttlCheckID  = "interop-web-ttl"
	httpCheckID = "interop-web-http"
	lockKey     = prefix + "lock/.lock"
)

type runner struct {
	client  *api.Client
	servers int
	failed  bool
}

// step runs fn and prints its single result line; a panic counts as a failure.
func (r *runner) step(name string, fn func() error) {
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		return fn()
	}()
	if err != nil {
		r.failed = true
		fmt.Printf("FAIL %s: %s\n", name, strings.ReplaceAll(err.Error(), "\n", " "))
		return
	}
	fmt.Printf("OK %s\n", name)
}

// poll retries fn until it succeeds or the timeout expires.
func poll(timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func main() {
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		fmt.Printf("FAIL client: %v\n", err)
		os.Exit(1)
	}
	servers := 1
	if s := os.Getenv("INTEROP_SERVERS"); s != "" {
		if servers, err = strconv.Atoi(s); err != nil || servers < 1 {
			fmt.Printf("FAIL client: INTEROP_SERVERS=%q\n", s)
			os.Exit(1)
		}
	}
	r := &runner{client: client, servers: servers}

	r.statusSteps()
	r.kvSteps()
	r.blockingSteps()
	r.serviceSteps()
	r.sessionSteps()
	r.lockSteps()

	if r.failed {
		os.Exit(1)
	}
}

func (r *runner) statusSteps() {
	status := r.client.Status()
	r.step("status-leader", func() error {
		leader, err := status.Leader()
		if err != nil {
			return err
		}
		if _, _, err := net.SplitHostPort(leader); err != nil {
			return fmt.Errorf("leader %q is not host:port: %v", leader, err)
		}
		return nil
	})
	r.step("status-peers", func() error {
		peers, err := status.Peers()
		if err != nil {
			return err
		}
		if len(peers) != r.servers {
			return fmt.Errorf("want %d peers, got %v", r.servers, peers)
		}
		leader, err := status.Leader()
		if err != nil {
			return err
		}
		for _, peer := range peers {
			if peer == leader {
				return nil
			}
		}
		return fmt.Errorf("leader %q is not among the peers %v", leader, peers)
	})
}

func (r *runner) kvSteps() {
	kv := r.client.KV()
	r.step("kv-put", func() error {
		for _, p := range []*api.KVPair{
			{Key: prefix + "a", Value: []byte("alpha"), Flags: 42},
			{Key: prefix + "b", Value: []byte("beta")},
			{Key: prefix + "sub/c", Value: []byte("gamma")},
		} {
			if _, err := kv.Put(p, nil); err != nil {
				return err
			}
		}
		return nil
	})
	r.step("kv-get", func() error {
		pair, meta, err := kv.Get(prefix+"a", nil)
		if err != nil {
			return err
		}
		if pair == nil {
			return errors.New("key not found")
		}
		if string(pair.Value) != "alpha" || pair.Flags != 42 || pair.Key != prefix+"a" {
			return fmt.Errorf("unexpected pair %+v", pair)
		}
		if meta.LastIndex == 0 || pair.CreateIndex == 0 || pair.ModifyIndex != pair.CreateIndex {
			return fmt.Errorf("bad indexes: meta %d pair %+v", meta.LastIndex, pair)
		}
		if !meta.KnownLeader {
			return errors.New("X-Consul-KnownLeader is not true")
		}
		for _, q := range []*api.QueryOptions{{RequireConsistent: true}, {AllowStale: true}} {
			if p, _, err := kv.Get(prefix+"a", q); err != nil || p == nil {
				return fmt.Errorf("read with %+v: %v (pair %v)", q, err, p)
			}
		}
		missing, meta, err := kv.Get(prefix+"missing", nil)
		if err != nil {
			return fmt.Errorf("missing key: %v", err)
		}
		if missing != nil || meta.LastIndex == 0 {
			return fmt.Errorf("missing key: got %+v, index %d", missing, meta.LastIndex)
		}
		return nil
	})
	r.step("kv-list", func() error {
		pairs, _, err := kv.List(prefix, nil)
		if err != nil {
			return err
		}
		var keys []string
		for _, p := range pairs {
			keys = append(keys, p.Key+"="+string(p.Value))
		}
		want := []string{prefix + "a=alpha", prefix + "b=beta", prefix + "sub/c=gamma"}
		if !reflect.DeepEqual(keys, want) {
			return fmt.Errorf("got %v, want %v", keys, want)
		}
		return nil
	})
	r.step("kv-keys", func() error {
		keys, _, err := kv.Keys(prefix, "/", nil)
		if err != nil {
			return err
		}
		want := []string{prefix + "a", prefix + "b", prefix + "sub/"}
		if !reflect.DeepEqual(keys, want) {
			return fmt.Errorf("got %v, want %v", keys, want)
		}
		return nil
	})
	r.step("kv-cas-success", func() error {
		pair, _, err := kv.Get(prefix+"b", nil)
		if err != nil || pair == nil {
			return fmt.Errorf("get: %v (pair %v)", err, pair)
		}
		pair.Value = []byte("beta2")
		ok, _, err := kv.CAS(pair, nil)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("CAS with current ModifyIndex returned false")
		}
		created, _, err := kv.CAS(&api.KVPair{Key: prefix + "new", Value: []byte("n"), ModifyIndex: 0}, nil)
		if err != nil {
			return err
		}
		if !created {
			return errors.New("CAS with index 0 on absent key returned false")
		}
		return nil
	})
	r.step("kv-cas-failure", func() error {
		pair, _, err := kv.Get(prefix+"b", nil)
		if err != nil || pair == nil {
			return fmt.Errorf("get: %v (pair %v)", err, pair)
		}
		stale := &api.KVPair{Key: prefix + "b", Value: []byte("stale"), ModifyIndex: pair.ModifyIndex - 1}
		ok, _, err := kv.CAS(stale, nil)
		if err != nil {
			return err
		}
		if ok {
			return errors.New("CAS with stale ModifyIndex returned true")
		}
		ok, _, err = kv.DeleteCAS(stale, nil)
		if err != nil {
			return err
		}
		if ok {
			return errors.New("DeleteCAS with stale ModifyIndex returned true")
		}
		again, _, err := kv.Get(prefix+"b", nil)
		if err != nil || again == nil || string(again.Value) != "beta2" {
			return fmt.Errorf("value changed after failed CAS: %v %+v", err, again)
		}
		return nil
	})
	r.step("kv-txn", func() error {
		ok, resp, _, err := kv.Txn(api.KVTxnOps{
			{Verb: api.KVSet, Key: prefix + "txn", Value: []byte("t")},
			{Verb: api.KVGet, Key: prefix + "a"},
		}, nil)
		if err != nil {
			return err
		}
		if !ok || len(resp.Results) != 2 || string(resp.Results[1].Value) != "alpha" {
			return fmt.Errorf("ok=%v results=%+v errors=%+v", ok, resp.Results, resp.Errors)
		}
		ok, resp, _, err = kv.Txn(api.KVTxnOps{
			{Verb: api.KVCAS, Key: prefix + "txn", Value: []byte("x"), Index: 1},
		}, nil)
		if err != nil {
			return err
		}
		if ok || len(resp.Errors) != 1 || resp.Errors[0].OpIndex != 0 {
			return fmt.Errorf("failed CAS txn: ok=%v errors=%+v", ok, resp.Errors)
		}
		return nil
	})
	r.step("kv-special-keys", func() error {
		binary := make([]byte, 256)
		for i := range binary {
			binary[i] = byte(i)
		}
		for _, key := range []string{"sp ace", "q?mark", "hash#tag", "pct%41", "plus+sign", "ünïcødé", "semi;colon", "a=b&c"} {
			full := prefix + "special/" + key
			if _, err := kv.Put(&api.KVPair{Key: full, Value: binary}, nil); err != nil {
				return fmt.Errorf("put %q: %v", full, err)
			}
			pair, _, err := kv.Get(full, nil)
			if err != nil {
				return fmt.Errorf("get %q: %v", full, err)
			}
			if pair == nil || pair.Key != full || !reflect.DeepEqual(pair.Value, binary) {
				return fmt.Errorf("get %q returned %+v", full, pair)
			}
		}
		if _, err := kv.Put(&api.KVPair{Key: prefix + "special/empty"}, nil); err != nil {
			return err
		}
		pair, _, err := kv.Get(prefix+"special/empty", nil)
		if err != nil || pair == nil || len(pair.Value) != 0 {
			return fmt.Errorf("empty value: %v %+v", err, pair)
		}
		keys, _, err := kv.Keys(prefix+"special/", "", nil)
		if err != nil {
			return err
		}
		if len(keys) != 9 {
			return fmt.Errorf("keys %q", keys)
		}
		_, err = kv.DeleteTree(prefix+"special/", nil)
		return err
	})
	r.step("kv-delete-tree", func() error {
		if _, err := kv.DeleteTree(prefix, nil); err != nil {
			return err
		}
		pairs, _, err := kv.List(prefix, nil)
		if err != nil {
			return err
		}
		if len(pairs) != 0 {
			return fmt.Errorf("%d keys left after DeleteTree", len(pairs))
		}
		return nil
	})
}

func (r *runner) blockingSteps() {
	kv := r.client.KV()
	key := prefix + "watched"
	r.step("kv-blocking-wakeup", func() error {
		if _, err := kv.Put(&api.KVPair{Key: key, Value: []byte("v1")}, nil); err != nil {
			return err
		}
		_, meta, err := kv.Get(key, nil)
		if err != nil {
			return err
		}
		go func() {
			time.Sleep(300 * time.Millisecond)
			_, _ = kv.Put(&api.KVPair{Key: key, Value: []byte("v2")}, nil)
		}()
		start := time.Now()
		pair, meta2, err := kv.Get(key, &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 10 * time.Second})
		elapsed := time.Since(start)
		if err != nil {
			return err
		}
		if pair == nil || string(pair.Value) != "v2" {
			return fmt.Errorf("woke with %+v", pair)
		}
		if meta2.LastIndex <= meta.LastIndex {
			return fmt.Errorf("index did not advance: %d -> %d", meta.LastIndex, meta2.LastIndex)
		}
		if elapsed < 200*time.Millisecond || elapsed > 5*time.Second {
			return fmt.Errorf("returned after %v", elapsed)
		}
		return nil
	})
	r.step("kv-blocking-timeout", func() error {
		_, meta, err := kv.Get(key, nil)
		if err != nil {
			return err
		}
		start := time.Now()
		pair, meta2, err := kv.Get(key, &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: time.Second})
		elapsed := time.Since(start)
		if err != nil {
			return err
		}
		if pair == nil || string(pair.Value) != "v2" {
			return fmt.Errorf("got %+v", pair)
		}
		if meta2.LastIndex != meta.LastIndex {
			return fmt.Errorf("index changed without a write: %d -> %d", meta.LastIndex, meta2.LastIndex)
		}
		// Consul adds up to wait/16 of jitter.
		if elapsed < 900*time.Millisecond || elapsed > 3*time.Second {
			return fmt.Errorf("timed out after %v, want about 1s", elapsed)
		}
		_, err = kv.Delete(key, nil)
		return err
	})
	r.step("watch-keyprefix", r.watchKeyPrefix)
}

// watchKeyPrefix runs a keyprefix watch plan (as `consul watch` and consul-template do) and checks that it
// reports the empty prefix first and then a Put.
func (r *runner) watchKeyPrefix() error {
	watched := prefix + "watch/"
	plan, err := watch.Parse(map[string]interface{}{"type": "keyprefix", "prefix": watched})
	if err != nil {
		return err
	}
	updates := make(chan api.KVPairs, 16)
	plan.Handler = func(_ uint64, data interface{}) {
		if pairs, ok := data.(api.KVPairs); ok {
			updates <- pairs
		}
	}
	go func() { _ = plan.RunWithClientAndHclog(r.client, nil) }()
	defer plan.Stop()
	next := func() (api.KVPairs, error) {
		select {
		case pairs := <-updates:
			return pairs, nil
		case <-time.After(5 * time.Second):
			return nil, errors.New("no watch update within 5s")
		}
	}
	first, err := next()
	if err != nil {
		return err
	}
	if len(first) != 0 {
		return fmt.Errorf("first update has %d pairs", len(first))
	}
	if _, err := r.client.KV().Put(&api.KVPair{Key: watched + "k", Value: []byte("w")}, nil); err != nil {
		return err
	}
	second, err := next()
	if err != nil {
		return err
	}
	if len(second) != 1 || second[0].Key != watched+"k" || string(second[0].Value) != "w" {
		return fmt.Errorf("second update %+v", second)
	}
	_, err = r.client.KV().DeleteTree(watched, nil)
	return err
}

// startHTTPTarget serves 200 OK for the agent's HTTP check.
func startHTTPTarget() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("healthy"))
	})
	go func() { _ = http.Serve(ln, mux) }()
	return "http://" + ln.Addr().String() + "/health", nil
}

func (r *runner) serviceSteps() {
	agent := r.client.Agent()
	health := r.client.Health()
	catalog := r.client.Catalog()

	r.step("agent-service-register", func() error {
		url, err := startHTTPTarget()
		if err != nil {
			return err
		}
		reg := &api.AgentServiceRegistration{
			ID:      serviceID,
			Name:    serviceName,
			Tags:    []string{"primary", "v1"},
			Port:    8080,
			Address: "127.0.0.1",
			Meta:    map[string]string{"version": "1"},
			Checks: api.AgentServiceChecks{
				{CheckID: ttlCheckID, Name: "ttl", TTL: "30s"},
				{CheckID: httpCheckID, Name: "http", HTTP: url, Interval: "1s", Timeout: "1s"},
			},
		}
		if err := agent.ServiceRegister(reg); err != nil {
			return err
		}
		services, err := agent.Services()
		if err != nil {
			return err
		}
		svc, ok := services[serviceID]
		if !ok {
			return fmt.Errorf("service %s not in agent services", serviceID)
		}
		if svc.Service != serviceName || svc.Port != 8080 || !reflect.DeepEqual(svc.Tags, reg.Tags) {
			return fmt.Errorf("unexpected agent service %+v", svc)
		}
		checks, err := agent.Checks()
		if err != nil {
			return err
		}
		ttl, ok := checks[ttlCheckID]
		if !ok {
			return fmt.Errorf("check %s missing", ttlCheckID)
		}
		if ttl.Status != api.HealthCritical || ttl.ServiceID != serviceID {
			return fmt.Errorf("unexpected TTL check %+v", ttl)
		}
		if _, ok := checks[httpCheckID]; !ok {
			return fmt.Errorf("check %s missing", httpCheckID)
		}
		return nil
	})
	r.step("agent-update-ttl", func() error {
		if err := agent.UpdateTTL(ttlCheckID, "all good", api.HealthPassing); err != nil {
			return err
		}
		checks, err := agent.Checks()
		if err != nil {
			return err
		}
		c := checks[ttlCheckID]
		if c == nil || c.Status != api.HealthPassing || c.Output != "all good" {
			return fmt.Errorf("unexpected TTL check %+v", c)
		}
		if err := agent.UpdateTTL("no-such-check", "", api.HealthPassing); err == nil {
			return errors.New("UpdateTTL on unknown check succeeded")
		}
		return nil
	})
	r.step("health-service-passing", func() error {
		return poll(8*time.Second, func() error {
			entries, meta, err := health.Service(serviceName, "", true, nil)
			if err != nil {
				return err
			}
			if len(entries) != 1 || meta.LastIndex == 0 {
				return fmt.Errorf("passing entries %d (index %d); HTTP check not passing yet?", len(entries), meta.LastIndex)
			}
			e := entries[0]
			if e.Service.ID != serviceID || e.Node == nil || len(e.Checks) < 3 {
				return fmt.Errorf("unexpected entry %+v", e)
			}
			if status := e.Checks.AggregatedStatus(); status != api.HealthPassing {
				return fmt.Errorf("aggregated status %s", status)
			}
			return nil
		})
	})
	r.step("health-service-tags", func() error {
		entries, _, err := health.Service(serviceName, "primary", true, nil)
		if err != nil {
			return err
		}
		if len(entries) != 1 {
			return fmt.Errorf("tag primary: %d entries", len(entries))
		}
		entries, _, err = health.ServiceMultipleTags(serviceName, []string{"primary", "v1"}, false, nil)
		if err != nil {
			return err
		}
		if len(entries) != 1 {
			return fmt.Errorf("tags primary,v1: %d entries", len(entries))
		}
		entries, _, err = health.Service(serviceName, "absent", false, nil)
		if err != nil {
			return err
		}
		if len(entries) != 0 {
			return fmt.Errorf("tag absent: %d entries", len(entries))
		}
		return nil
	})
	r.step("health-service-critical", func() error {
		if err := agent.UpdateTTL(ttlCheckID, "broken", api.HealthCritical); err != nil {
			return err
		}
		entries, _, err := health.Service(serviceName, "", true, nil)
		if err != nil {
			return err
		}
		if len(entries) != 0 {
			return fmt.Errorf("passingOnly returned %d entries with a critical check", len(entries))
		}
		entries, _, err = health.Service(serviceName, "", false, nil)
		if err != nil {
			return err
		}
		if len(entries) != 1 {
			return fmt.Errorf("all entries: %d", len(entries))
		}
		return agent.UpdateTTL(ttlCheckID, "", api.HealthPassing)
	})
	r.step("catalog-services", func() error {
		services, meta, err := catalog.Services(nil)
		if err != nil {
			return err
		}
		tags, ok := services[serviceName]
		if !ok {
			return fmt.Errorf("%s not in %v", serviceName, services)
		}
		sort.Strings(tags)
		if !reflect.DeepEqual(tags, []string{"primary", "v1"}) {
			return fmt.Errorf("tags %v", tags)
		}
		if _, ok := services["consul"]; !ok {
			return fmt.Errorf("consul service missing from %v", services)
		}
		if meta.LastIndex == 0 {
			return errors.New("X-Consul-Index missing")
		}
		return nil
	})
	r.step("catalog-nodes", func() error {
		nodes, _, err := catalog.Nodes(nil)
		if err != nil {
			return err
		}
		if len(nodes) != r.servers {
			return fmt.Errorf("want %d nodes, got %d", r.servers, len(nodes))
		}
		for _, n := range nodes {
			if n.Node == "" || n.Address == "" || n.Datacenter == "" {
				return fmt.Errorf("unexpected node %+v", *n)
			}
		}
		return nil
	})
	r.step("catalog-service", func() error {
		svcs, _, err := catalog.Service(serviceName, "v1", nil)
		if err != nil {
			return err
		}
		if len(svcs) != 1 {
			return fmt.Errorf("%d instances", len(svcs))
		}
		s := svcs[0]
		if s.ServiceID != serviceID || s.ServicePort != 8080 || s.ServiceAddress != "127.0.0.1" ||
			s.ServiceMeta["version"] != "1" || s.Node == "" {
			return fmt.Errorf("unexpected instance %+v", s)
		}
		none, _, err := catalog.Service(serviceName, "absent", nil)
		if err != nil {
			return err
		}
		if len(none) != 0 {
			return fmt.Errorf("tag absent: %d instances", len(none))
		}
		return nil
	})
	r.step("agent-self", func() error {
		self, err := agent.Self()
		if err != nil {
			return err
		}
		if self["Config"]["Datacenter"] != "dc1" {
			return fmt.Errorf("Config.Datacenter %v", self["Config"]["Datacenter"])
		}
		name, err := agent.NodeName()
		if err != nil {
			return err
		}
		if name == "" {
			return errors.New("empty node name")
		}
		members, err := agent.Members(false)
		if err != nil {
			return err
		}
		// Every server of the cluster is a LAN member, alive, this agent among them.
		if len(members) != r.servers {
			return fmt.Errorf("want %d members, got %d", r.servers, len(members))
		}
		listed := false
		for _, m := range members {
			if m.Status != 1 {
				return fmt.Errorf("member not alive: %+v", m)
			}
			listed = listed || m.Name == name
		}
		if !listed {
			return fmt.Errorf("this agent is not a member: %+v", members)
		}
		return nil
	})
	r.step("agent-service-get", func() error {
		svc, meta, err := agent.Service(serviceID, nil)
		if err != nil {
			return err
		}
		if svc == nil || svc.ID != serviceID || svc.Service != serviceName || svc.Meta["version"] != "1" {
			return fmt.Errorf("unexpected service %+v", svc)
		}
		if meta.LastContentHash == "" {
			return errors.New("X-Consul-ContentHash missing")
		}
		if _, _, err := agent.Service("no-such-service", nil); err == nil {
			return errors.New("unknown service id did not fail")
		}
		filtered, err := agent.ServicesWithFilter(`Service == "` + serviceName + `"`)
		if err != nil {
			return err
		}
		if len(filtered) != 1 {
			return fmt.Errorf("filter matched %d services", len(filtered))
		}
		checks, err := agent.ChecksWithFilter(`ServiceID == "` + serviceID + `"`)
		if err != nil {
			return err
		}
		if len(checks) != 2 {
			return fmt.Errorf("check filter matched %d checks", len(checks))
		}
		status, infos, err := agent.AgentHealthServiceByName(serviceName)
		if err != nil {
			return err
		}
		if status != api.HealthPassing || len(infos) != 1 {
			return fmt.Errorf("health by name: %s, %d infos", status, len(infos))
		}
		return nil
	})
	r.step("agent-service-hash-blocking", func() error {
		_, meta, err := agent.Service(serviceID, nil)
		if err != nil {
			return err
		}
		start := time.Now()
		_, meta2, err := agent.Service(serviceID, &api.QueryOptions{WaitHash: meta.LastContentHash, WaitTime: time.Second})
		if err != nil {
			return err
		}
		if elapsed := time.Since(start); elapsed < 900*time.Millisecond || elapsed > 3*time.Second {
			return fmt.Errorf("hash wait returned after %v, want about 1s", elapsed)
		}
		if meta2.LastContentHash != meta.LastContentHash {
			return fmt.Errorf("hash changed without a change: %s -> %s", meta.LastContentHash, meta2.LastContentHash)
		}
		go func() {
			time.Sleep(300 * time.Millisecond)
			_ = agent.ServiceRegister(&api.AgentServiceRegistration{
				ID: serviceID, Name: serviceName, Tags: []string{"primary", "v1"}, Port: 8080, Address: "127.0.0.1",
				Meta: map[string]string{"version": "2"},
			})
		}()
		start = time.Now()
		svc, meta3, err := agent.Service(serviceID, &api.QueryOptions{WaitHash: meta.LastContentHash, WaitTime: 10 * time.Second})
		if err != nil {
			return err
		}
		if elapsed := time.Since(start); elapsed > 5*time.Second || meta3.LastContentHash == meta.LastContentHash ||
			svc.Meta["version"] != "2" {
			return fmt.Errorf("after %v: hash %s, service %+v", elapsed, meta3.LastContentHash, svc)
		}
		checks, err := agent.Checks()
		if err != nil {
			return err
		}
		if _, ok := checks[ttlCheckID]; !ok {
			return errors.New("re-registration without checks dropped the TTL check")
		}
		return nil
	})
	r.step("agent-check-register", func() error {
		check := &api.AgentCheckRegistration{ID: "interop-extra", Name: "extra", ServiceID: serviceID}
		check.TTL = "30s"
		if err := agent.CheckRegister(check); err != nil {
			return err
		}
		for _, c := range []struct {
			update func(string, string) error
			want   string
		}{{agent.WarnTTL, api.HealthWarning}, {agent.FailTTL, api.HealthCritical}, {agent.PassTTL, api.HealthPassing}} {
			if err := c.update("interop-extra", "note"); err != nil {
				return err
			}
			checks, err := agent.Checks()
			if err != nil {
				return err
			}
			if got := checks["interop-extra"]; got == nil || got.Status != c.want || got.Output != "note" {
				return fmt.Errorf("want %s, got %+v", c.want, got)
			}
		}
		return agent.CheckDeregister("interop-extra")
	})
	r.step("agent-maintenance", func() error {
		if err := agent.EnableServiceMaintenance(serviceID, "interop"); err != nil {
			return err
		}
		checks, err := agent.Checks()
		if err != nil {
			return err
		}
		maint := checks["_service_maintenance:"+serviceID]
		if maint == nil || maint.Status != api.HealthCritical || maint.Notes != "interop" {
			return fmt.Errorf("maintenance check %+v", maint)
		}
		entries, _, err := health.Service(serviceName, "", true, nil)
		if err != nil {
			return err
		}
		if len(entries) != 0 {
			return fmt.Errorf("%d passing entries in maintenance", len(entries))
		}
		if err := agent.DisableServiceMaintenance(serviceID); err != nil {
			return err
		}
		checks, err = agent.Checks()
		if err != nil {
			return err
		}
		if _, ok := checks["_service_maintenance:"+serviceID]; ok {
			return errors.New("maintenance check still present")
		}
		return nil
	})
	r.step("health-checks", func() error {
		checks, meta, err := health.Checks(serviceName, nil)
		if err != nil {
			return err
		}
		if len(checks) != 2 || meta.LastIndex == 0 {
			return fmt.Errorf("%d checks for %s", len(checks), serviceName)
		}
		for _, c := range checks {
			if c.CheckID == httpCheckID && c.Type != "http" {
				return fmt.Errorf("HTTP check type %q", c.Type)
			}
			if c.CheckID == ttlCheckID && c.Type != "ttl" {
				return fmt.Errorf("TTL check type %q", c.Type)
			}
		}
		node := checks[0].Node
		nodeChecks, _, err := health.Node(node, nil)
		if err != nil {
			return err
		}
		if len(nodeChecks) < 3 {
			return fmt.Errorf("node %s has %d checks", node, len(nodeChecks))
		}
		passing, _, err := health.State(api.HealthPassing, nil)
		if err != nil {
			return err
		}
		found := 0
		for _, c := range passing {
			if c.ServiceID == serviceID {
				found++
			}
		}
		if found != 2 {
			return fmt.Errorf("state passing has %d of the service's checks", found)
		}
		return nil
	})
	r.step("health-blocking-wakeup", func() error {
		_, meta, err := health.Service(serviceName, "", false, nil)
		if err != nil {
			return err
		}
		go func() {
			time.Sleep(300 * time.Millisecond)
			_ = agent.UpdateTTL(ttlCheckID, "degraded", api.HealthWarning)
		}()
		start := time.Now()
		entries, meta2, err := health.Service(serviceName, "", false,
			&api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 10 * time.Second})
		elapsed := time.Since(start)
		if err != nil {
			return err
		}
		if meta2.LastIndex <= meta.LastIndex || elapsed > 5*time.Second {
			return fmt.Errorf("index %d -> %d after %v", meta.LastIndex, meta2.LastIndex, elapsed)
		}
		if len(entries) != 1 || entries[0].Checks.AggregatedStatus() != api.HealthWarning {
			return fmt.Errorf("unexpected entries after wake-up %+v", entries)
		}
		return agent.UpdateTTL(ttlCheckID, "", api.HealthPassing)
	})
	r.step("catalog-node", func() error {
		dcs, err := catalog.Datacenters()
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(dcs, []string{"dc1"}) {
			return fmt.Errorf("datacenters %v", dcs)
		}
		name, err := agent.NodeName()
		if err != nil {
			return err
		}
		node, _, err := catalog.Node(name, nil)
		if err != nil {
			return err
		}
		if node == nil || node.Node == nil || node.Node.Node != name {
			return fmt.Errorf("unexpected node %+v", node)
		}
		if svc, ok := node.Services[serviceID]; !ok || svc.Port != 8080 {
			return fmt.Errorf("service %s missing from node services %v", serviceID, node.Services)
		}
		return nil
	})
	r.step("catalog-blocking-wakeup", func() error {
		_, meta, err := catalog.Services(nil)
		if err != nil {
			return err
		}
		go func() {
			time.Sleep(300 * time.Millisecond)
			_ = agent.ServiceRegister(&api.AgentServiceRegistration{Name: "interop-late", Port: 9000})
		}()
		defer func() { _ = agent.ServiceDeregister("interop-late") }()
		start := time.Now()
		services, meta2, err := catalog.Services(&api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 10 * time.Second})
		elapsed := time.Since(start)
		if err != nil {
			return err
		}
		if _, ok := services["interop-late"]; !ok || meta2.LastIndex <= meta.LastIndex || elapsed > 5*time.Second {
			return fmt.Errorf("after %v: index %d -> %d, services %v", elapsed, meta.LastIndex, meta2.LastIndex, services)
		}
		return nil
	})
	r.step("agent-service-replace-checks", func() error {
		reg := &api.AgentServiceRegistration{
			ID: serviceID, Name: serviceName, Tags: []string{"primary", "v1"}, Port: 8080, Address: "127.0.0.1",
			Checks: api.AgentServiceChecks{{CheckID: ttlCheckID, Name: "ttl", TTL: "30s"}},
		}
		if err := agent.ServiceRegisterOpts(reg, api.ServiceRegisterOpts{ReplaceExistingChecks: true}); err != nil {
			return err
		}
		checks, err := agent.ChecksWithFilter(`ServiceID == "` + serviceID + `"`)
		if err != nil {
			return err
		}
		if _, ok := checks[httpCheckID]; ok || len(checks) != 1 {
			return fmt.Errorf("checks after replace: %v", checks)
		}
		if checks[ttlCheckID].Status != api.HealthPassing {
			return fmt.Errorf("TTL check status not carried over: %+v", checks[ttlCheckID])
		}
		return nil
	})
	r.step("catalog-register", func() error {
		reg := &api.CatalogRegistration{
			Node:     "interop-external",
			Address:  "192.0.2.10",
			NodeMeta: map[string]string{"external-node": "true"},
			Service:  &api.AgentService{ID: "ext-db", Service: "ext-db", Tags: []string{"ext"}, Port: 5432},
			Check: &api.AgentCheck{
				CheckID: "ext-db-alive", Name: "alive", Status: api.HealthPassing, ServiceID: "ext-db",
			},
		}
		if _, err := catalog.Register(reg, nil); err != nil {
			return err
		}
		entries, _, err := health.Service("ext-db", "ext", true, nil)
		if err != nil {
			return err
		}
		if len(entries) != 1 || entries[0].Node.Node != "interop-external" || entries[0].Node.Address != "192.0.2.10" ||
			entries[0].Service.Port != 5432 || entries[0].Node.Meta["external-node"] != "true" {
			return fmt.Errorf("unexpected entries %+v", entries)
		}
		nodes, _, err := catalog.Nodes(&api.QueryOptions{NodeMeta: map[string]string{"external-node": "true"}})
		if err != nil {
			return err
		}
		if len(nodes) != 1 || nodes[0].Node != "interop-external" {
			return fmt.Errorf("node-meta filter returned %+v", nodes)
		}
		if _, err := catalog.Deregister(&api.CatalogDeregistration{Node: "interop-external"}, nil); err != nil {
			return err
		}
		services, _, err := catalog.Services(nil)
		if err != nil {
			return err
		}
		if _, ok := services["ext-db"]; ok {
			return errors.New("ext-db still in the catalog after node deregistration")
		}
		return nil
	})
	r.step("agent-service-deregister", func() error {
		if err := agent.ServiceDeregister(serviceID); err != nil {
			return err
		}
		services, err := agent.Services()
		if err != nil {
			return err
		}
		if _, ok := services[serviceID]; ok {
			return errors.New("service still registered")
		}
		return nil
	})
}

func (r *runner) sessionSteps() {
	session := r.client.Session()
	var id string
	r.step("session-create", func() error {
		var err error
		id, _, err = session.Create(&api.SessionEntry{Name: "interop", TTL: "30s", Behavior: api.SessionBehaviorDelete}, nil)
		if err != nil {
			return err
		}
		if len(id) != 36 {
			return fmt.Errorf("session id %q", id)
		}
		return nil
	})
	r.step("session-info", func() error {
		info, _, err := session.Info(id, nil)
		if err != nil {
			return err
		}
		if info == nil || info.ID != id || info.Name != "interop" || info.TTL != "30s" ||
			info.Behavior != api.SessionBehaviorDelete || info.Node == "" {
			return fmt.Errorf("unexpected session %+v", info)
		}
		if info.LockDelay != 15*time.Second || !reflect.DeepEqual(info.NodeChecks, []string{"serfHealth"}) {
			return fmt.Errorf("defaults: LockDelay %v, NodeChecks %v", info.LockDelay, info.NodeChecks)
		}
		if _, _, err := session.Renew(id, nil); err != nil {
			return fmt.Errorf("renew: %v", err)
		}
		other, _, err := session.CreateNoChecks(&api.SessionEntry{LockDelay: 1500 * time.Millisecond}, nil)
		if err != nil {
			return err
		}
		defer func() { _, _ = session.Destroy(other, nil) }()
		info, _, err = session.Info(other, nil)
		if err != nil || info == nil {
			return fmt.Errorf("info of session without checks: %v %+v", err, info)
		}
		if info.LockDelay != 1500*time.Millisecond || len(info.NodeChecks) != 0 || info.Behavior != api.SessionBehaviorRelease {
			return fmt.Errorf("session without checks: %+v", info)
		}
		return nil
	})
	r.step("session-list", func() error {
		all, _, err := session.List(nil)
		if err != nil {
			return err
		}
		if len(all) != 1 || all[0].ID != id {
			return fmt.Errorf("sessions %+v", all)
		}
		byNode, _, err := session.Node(all[0].Node, nil)
		if err != nil {
			return err
		}
		if len(byNode) != 1 || byNode[0].ID != id {
			return fmt.Errorf("node sessions %+v", byNode)
		}
		return nil
	})
	r.step("session-destroy", func() error {
		if _, err := session.Destroy(id, nil); err != nil {
			return err
		}
		info, _, err := session.Info(id, nil)
		if err != nil {
			return err
		}
		if info != nil {
			return fmt.Errorf("session still present: %+v", info)
		}
		return nil
	})
}

func (r *runner) lockSteps() {
	newLockAt := func(key string, wait time.Duration) (*api.Lock, error) {
		return r.client.LockOpts(&api.LockOptions{Key: key, Value: []byte("holder"), LockWaitTime: wait, LockTryOnce: true})
	}
	newLock := func(wait time.Duration) (*api.Lock, error) { return newLockAt(lockKey, wait) }
	var first *api.Lock
	r.step("lock-acquire", func() error {
		var err error
		if first, err = newLock(5 * time.Second); err != nil {
			return err
		}
		lost, err := first.Lock(nil)
		if err != nil {
			return err
		}
		if lost == nil {
			return errors.New("lock not acquired")
		}
		pair, _, err := r.client.KV().Get(lockKey, nil)
		if err != nil {
			return err
		}
		if pair == nil || pair.Session == "" || pair.Flags != api.LockFlagValue || pair.LockIndex != 1 {
			return fmt.Errorf("unexpected lock entry %+v", pair)
		}
		return nil
	})
	r.step("lock-contended", func() error {
		second, err := newLock(time.Second)
		if err != nil {
			return err
		}
		start := time.Now()
		lost, err := second.Lock(nil)
		if err != nil {
			return err
		}
		if lost != nil {
			_ = second.Unlock()
			return errors.New("second lock acquired while held")
		}
		if elapsed := time.Since(start); elapsed < 900*time.Millisecond || elapsed > 5*time.Second {
			return fmt.Errorf("gave up after %v, want about 1s", elapsed)
		}
		return nil
	})
	r.step("lock-unlock", func() error {
		if first == nil {
			return errors.New("no lock held")
		}
		if err := first.Unlock(); err != nil {
			return err
		}
		pair, _, err := r.client.KV().Get(lockKey, nil)
		if err != nil {
			return err
		}
		if pair == nil || pair.Session != "" {
			return fmt.Errorf("lock entry still held: %+v", pair)
		}
		return nil
	})
	r.step("lock-second-acquire", func() error {
		second, err := newLock(5 * time.Second)
		if err != nil {
			return err
		}
		lost, err := second.Lock(nil)
		if err != nil {
			return err
		}
		if lost == nil {
			return errors.New("lock not acquired after release")
		}
		if err := second.Unlock(); err != nil {
			return err
		}
		return second.Destroy()
	})
	r.step("semaphore", func() error {
		newSem := func(wait time.Duration) (*api.Semaphore, error) {
			return r.client.SemaphoreOpts(&api.SemaphoreOptions{
				Prefix: prefix + "sem", Limit: 2, SemaphoreWaitTime: wait, SemaphoreTryOnce: true,
			})
		}
		var held []*api.Semaphore
		defer func() {
			for _, s := range held {
				_ = s.Release()
			}
		}()
		for i := 0; i < 2; i++ {
			s, err := newSem(5 * time.Second)
			if err != nil {
				return err
			}
			lost, err := s.Acquire(nil)
			if err != nil {
				return fmt.Errorf("holder %d: %v", i+1, err)
			}
			if lost == nil {
				return fmt.Errorf("holder %d did not acquire a slot", i+1)
			}
			held = append(held, s)
		}
		third, err := newSem(time.Second)
		if err != nil {
			return err
		}
		start := time.Now()
		lost, err := third.Acquire(nil)
		if err != nil {
			return err
		}
		if lost != nil {
			_ = third.Release()
			return errors.New("third contender acquired a full semaphore")
		}
		if elapsed := time.Since(start); elapsed < 900*time.Millisecond || elapsed > 5*time.Second {
			return fmt.Errorf("third contender gave up after %v, want about 1s", elapsed)
		}
		if err := held[0].Release(); err != nil {
			return err
		}
		held = held[1:]
		fourth, err := newSem(5 * time.Second)
		if err != nil {
			return err
		}
		if lost, err = fourth.Acquire(nil); err != nil || lost == nil {
			return fmt.Errorf("slot not acquired after a release: %v", err)
		}
		for _, s := range append(held, fourth) {
			if err := s.Release(); err != nil {
				return err
			}
		}
		held = nil
		return fourth.Destroy()
	})
	r.step("lock-lost-on-session-destroy", func() error {
		// Destroying the holder's session starts the key's lock-delay, so use a key of its own.
		key := fmt.Sprintf("%slost-%d/.lock", prefix, time.Now().UnixNano())
		l, err := newLockAt(key, 5*time.Second)
		if err != nil {
			return err
		}
		lost, err := l.Lock(nil)
		if err != nil || lost == nil {
			return fmt.Errorf("lock not acquired: %v", err)
		}
		pair, _, err := r.client.KV().Get(key, nil)
		if err != nil || pair == nil || pair.Session == "" {
			return fmt.Errorf("lock entry: %v %+v", err, pair)
		}
		if _, err := r.client.Session().Destroy(pair.Session, nil); err != nil {
			return err
		}
		select {
		case <-lost:
		case <-time.After(5 * time.Second):
			return errors.New("lost-lock channel not closed after the session was destroyed")
		}
		_ = l.Unlock()
		return l.Destroy()
	})
}
