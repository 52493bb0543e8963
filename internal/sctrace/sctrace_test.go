package sctrace

import (
	"errors"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
)

// The testdata traces were captured with strace 6.1:
//   go-exec-tor.strace: a Go program that runs tor and dials (with
//     -f --seccomp-bpf -q), edited to add tor-thread and leak lines;
//   python-mixed.strace: python3 doing IPv4/IPv6/unix connects, a DNS
//     lookup through glibc (nscd, sendmmsg), netlink and sendmsg (-f -qq).

func parseFile(t *testing.T, name string) []Event {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	evs, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestParseLines(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Event
	}{
		{
			name: "plain connect",
			in:   `18229 connect(3, {sa_family=AF_INET, sin_port=htons(1), sin_addr=inet_addr("127.0.0.1")}, 16) = -1 ECONNREFUSED (Connection refused)`,
			want: []Event{{Line: 1, PID: 18229, Syscall: "connect", Args: `3, {sa_family=AF_INET, sin_port=htons(1), sin_addr=inet_addr("127.0.0.1")}, 16`, Ret: "-1 ECONNREFUSED (Connection refused)"}},
		},
		{
			name: "stderr pid prefix and alignment padding",
			in:   `[pid  4242] vfork()                     = 4243`,
			want: []Event{{Line: 1, PID: 4242, Syscall: "vfork", Ret: "4243"}},
		},
		{
			name: "unfinished and resumed, interleaved with another task",
			in: `22603 clone(child_stack=NULL, flags=CLONE_VM|CLONE_PIDFD|CLONE_VFORK|SIGCHLD <unfinished ...>
22607 execve("/usr/sbin/tor", ["/usr/sbin/tor"], 0x2ac2 /* 35 vars */) = 0
22603 <... clone resumed>, parent_tid=[13]) = 22607`,
			want: []Event{
				{Line: 2, PID: 22607, Syscall: "execve", Args: `"/usr/sbin/tor", ["/usr/sbin/tor"], 0x2ac2 /* 35 vars */`, Ret: "0"},
				{Line: 3, PID: 22603, Syscall: "clone", Args: `child_stack=NULL, flags=CLONE_VM|CLONE_PIDFD|CLONE_VFORK|SIGCHLD, parent_tid=[13]`, Ret: "22607"},
			},
		},
		{
			name: "resumed after the task was killed",
			in: `7 connect(3, {sa_family=AF_UNIX, sun_path="/x"}, 5 <unfinished ...>
7 <... connect resumed> <unfinished ...>) = ?
7 +++ killed by SIGKILL +++`,
			want: []Event{
				{Line: 2, PID: 7, Syscall: "connect", Args: `3, {sa_family=AF_UNIX, sun_path="/x"}, 5`, Ret: "?"},
				{Line: 3, PID: 7, Syscall: Exited, Ret: "killed by SIGKILL"},
			},
		},
		{
			name: "never resumed: reported where it began",
			in: `7 connect(3, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.0.0.1")}, 16 <unfinished ...>
8 execve("/bin/true", ["true"], 0x1 /* 1 var */) = 0`,
			want: []Event{
				{Line: 1, PID: 7, Syscall: "connect", Args: `3, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.0.0.1")}, 16`, Ret: "?"},
				{Line: 2, PID: 8, Syscall: "execve", Args: `"/bin/true", ["true"], 0x1 /* 1 var */`, Ret: "0"},
			},
		},
		{
			name: "parentheses and quotes inside a payload",
			in:   `9 sendto(4, ") = 3 \"(", 8, 0, NULL, 0) = 8`,
			want: []Event{{Line: 1, PID: 9, Syscall: "sendto", Args: `4, ") = 3 \"(", 8, 0, NULL, 0`, Ret: "8"}},
		},
		{
			name: "signals, superseded and strace messages are skipped",
			in: `1 --- SIGCHLD {si_signo=SIGCHLD} ---
1 +++ superseded by execve in pid 2 +++
strace: Process 1 attached`,
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		`1 connect(3, {sa_family=AF_INET}, 16`,       // no closing parenthesis
		`1 connect(3, {sa_family=AF_INET}, 16) oops`, // no return value
		`1 <... connect resumed`,                     // cut resumed marker
	} {
		if _, err := Parse(strings.NewReader(in)); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %v, want ErrSyntax", in, err)
		}
	}
}

func TestParseSockaddr(t *testing.T) {
	ip := netip.MustParseAddr
	tests := []struct {
		in   string
		want Addr
	}{
		{`{sa_family=AF_INET, sin_port=htons(9050), sin_addr=inet_addr("127.0.0.1")}`, Addr{Family: AFInet, IP: ip("127.0.0.1"), Port: 9050}},
		{`{sa_family=AF_INET6, sin6_port=htons(1), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}`, Addr{Family: AFInet6, IP: ip("::1"), Port: 1}},
		{`{sa_family=AF_UNIX, sun_path="/tmp/a/tor-data/control.sock"}`, Addr{Family: AFUnix, Path: "/tmp/a/tor-data/control.sock"}},
		{`{sa_family=AF_UNIX, sun_path=@"abstract-name"}`, Addr{Family: AFUnix, Path: "@abstract-name"}},
		{`{sa_family=AF_UNIX, sun_path="/tmp/sp\x61ce \"q\""}`, Addr{Family: AFUnix, Path: `/tmp/space "q"`}},
		{`{sa_family=AF_UNIX}`, Addr{Family: AFUnix}},
		{`{sa_family=AF_NETLINK, nl_pid=0, nl_groups=00000000}`, Addr{Family: AFNetlink}},
		{`{sa_family=AF_UNSPEC, sa_data="\0\0"}`, Addr{Family: AFUnspec}},
	}
	for _, tt := range tests {
		got, err := ParseSockaddr(tt.in)
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		tt.want.Raw = tt.in
		if got != tt.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{`sa_family=AF_INET`, `{sin_port=htons(1)}`, `{sa_family=AF_INET, sin_port=1, sin_addr=inet_addr("127.0.0.1")}`, `{sa_family=AF_INET, sin_port=htons(1), sin_addr=inet_addr("x")}`} {
		if _, err := ParseSockaddr(bad); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseSockaddr(%q) = %v, want ErrSyntax", bad, err)
		}
	}
}

func TestDestinations(t *testing.T) {
	evs := parseFile(t, "python-mixed.strace")
	var got []string
	for _, e := range evs {
		ds, err := e.Destinations()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			got = append(got, e.Syscall+" "+d.String())
		}
		if e.Syscall == "sendmmsg" && len(ds) != 0 {
			t.Errorf("sendmmsg on a connected socket named %v", ds)
		}
	}
	want := []string{
		`connect AF_INET 127.0.0.1:1`,
		`connect AF_INET6 [::1]:1`,
		`connect AF_UNIX "/tmp/nonexistent-socket-path-for-strace.sock"`,
		`sendto AF_INET 127.0.0.1:53`,
		`connect AF_UNIX "@abstract-name"`,
		`connect AF_INET 127.0.0.1:2`,
		`connect AF_UNIX "/var/run/nscd/socket"`,
		`connect AF_UNIX "/var/run/nscd/socket"`,
		`connect AF_INET 10.255.255.53:53`,
		`sendto {sa_family=AF_NETLINK, nl_pad=0xdd3b, nl_pid=0, nl_groups=00000000}`,
		`sendmsg AF_INET 127.0.0.1:9`, // its payload holds a fake msg_name={...}
		`sendto AF_INET6 [::ffff:127.0.0.1]:9`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("destinations:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestClassify(t *testing.T) {
	p := Policy{ConfigDir: "/tmp/a", SocksPaths: []string{"/tmp/a/tor-data/socks.sock", "/tmp/mmogit-tor-1/socks.sock"}, SocksPorts: []int{40123}, ControlPorts: []int{40999}}
	ip := netip.MustParseAddr
	tests := []struct {
		a    Addr
		want Class
	}{
		{Addr{Family: AFUnix, Path: "/tmp/a/tor-data/control.sock"}, UnixConfigDir},
		{Addr{Family: AFUnix, Path: "/tmp/a/tor-data/socks.sock"}, TorSocksUnix},
		{Addr{Family: AFUnix, Path: "/tmp/mmogit-tor-1/socks.sock"}, TorSocksUnix},
		{Addr{Family: AFUnix, Path: "/tmp/mmogit-tor-2/socks.sock"}, UnixOther},
		{Addr{Family: AFUnix, Path: "/tmp/a/agent.sock"}, UnixConfigDir},
		{Addr{Family: AFUnix, Path: "/tmp/a/../b/agent.sock"}, UnixOther},
		{Addr{Family: AFUnix, Path: "/tmp/ab/agent.sock"}, UnixOther},
		{Addr{Family: AFUnix, Path: "/var/run/nscd/socket"}, UnixOther},
		{Addr{Family: AFUnix, Path: "@/tmp/a/x"}, UnixOther},
		{Addr{Family: AFUnix}, UnixOther},
		{Addr{Family: AFInet, IP: ip("127.0.0.1"), Port: 40123}, TorSocks},
		{Addr{Family: AFInet, IP: ip("127.0.0.1"), Port: 40999}, TorControl},
		{Addr{Family: AFInet, IP: ip("127.0.0.2"), Port: 40123}, Loopback},
		{Addr{Family: AFInet, IP: ip("127.0.0.1"), Port: 5001}, Loopback},
		{Addr{Family: AFInet, IP: ip("127.0.0.53"), Port: 53}, DNS},
		{Addr{Family: AFInet, IP: ip("10.1.2.3"), Port: 443}, Inet},
		{Addr{Family: AFInet6, IP: ip("::1"), Port: 40123}, Inet6},
		{Addr{Family: AFInet6, IP: ip("::ffff:127.0.0.1"), Port: 40123}, TorSocks},
		{Addr{Family: AFInet6, IP: ip("2001:db8::1"), Port: 53}, DNS},
		{Addr{Family: AFNetlink}, Netlink},
		{Addr{Family: AFUnspec}, Unspec},
		{Addr{Family: "AF_PACKET"}, OtherFamily},
	}
	for _, tt := range tests {
		if got := p.Classify(tt.a); got != tt.want {
			t.Errorf("Classify(%v %q) = %s, want %s", tt.a, tt.a.Path, got, tt.want)
		}
	}
}

func TestTreeMarksTorSubtree(t *testing.T) {
	evs := parseFile(t, "go-exec-tor.strace")
	tree := Build(evs)
	if tree.Reused != 0 {
		t.Errorf("Reused = %d", tree.Reused)
	}
	byPID := map[int]*Task{}
	for _, k := range tree.Tasks {
		byPID[k.PID] = k
	}
	// 22607 spoke (execve) before its creator's clone returned; it must
	// still be 22603's child, and 22603 a thread of 22601.
	if k := byPID[22607]; k == nil || k.Parent != byPID[22603].ID || k.Born != 8 {
		t.Fatalf("tor task %+v, want child of 22603 born at line 8", k)
	}
	if byPID[22603].Parent != byPID[22601].ID || byPID[22601].Parent != -1 {
		t.Errorf("thread links wrong: %+v %+v", byPID[22603], byPID[22601])
	}
	last := len(evs) + 100
	for pid, want := range map[int]bool{22601: false, 22602: false, 22603: false, 22606: false, 22607: true, 22610: true} {
		if got := tree.Marked(byPID[pid], last, IsTorProgram); got != want {
			t.Errorf("Marked(%d) = %t, want %t", pid, got, want)
		}
	}
	// Before its execve the new process is still the agent's.
	if tree.Marked(byPID[22607], 6, IsTorProgram) {
		t.Error("task 22607 marked before it executed tor")
	}
}

func TestTreeChildExitsBeforeCloneReturns(t *testing.T) {
	// Captured from a traced agent: Go's pidfd probe child exits before
	// its creator's vfork-style clone returns. It is the same task, not a
	// reused ID.
	in := `28734 execve("/tmp/mmogit", ["/tmp/mmogit"], 0x7fff /* 36 vars */) = 0
28734 clone3({flags=CLONE_VM|CLONE_THREAD, child_tid=0x7efc, parent_tid=0x7efc, exit_signal=0, stack=0x7efc, stack_size=0x7fff80, tls=0x7efc} => {parent_tid=[28740]}, 88) = 28740
28740 clone(child_stack=NULL, flags=CLONE_VM|CLONE_PIDFD|CLONE_VFORK <unfinished ...>
28745 +++ exited with 0 +++
28740 <... clone resumed>, parent_tid=[17]) = 28745`
	evs, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	tree := Build(evs)
	if tree.Reused != 0 || len(tree.Tasks) != 3 {
		t.Fatalf("Reused %d, %d tasks: want 0 and 3", tree.Reused, len(tree.Tasks))
	}
	if k := tree.Tasks[2]; k.PID != 28745 || k.Parent != 1 || k.Born != 5 {
		t.Errorf("probe child %+v: want parent task 1 (28740), born at line 5", k)
	}
}

func TestTreeReusedPID(t *testing.T) {
	// Task 5 is a tor thread, exits, and the ID comes back as a child of
	// the (unmarked) agent: the new task must not inherit tor's mark.
	in := `1 clone(child_stack=NULL, flags=SIGCHLD) = 2
2 execve("/usr/sbin/tor", ["tor"], 0x1 /* 1 var */) = 0
2 clone(child_stack=NULL, flags=CLONE_VM|CLONE_THREAD) = 5
5 connect(3, {sa_family=AF_INET, sin_port=htons(5001), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
5 +++ exited with 0 +++
1 clone(child_stack=NULL, flags=CLONE_VM|CLONE_THREAD) = 5
5 connect(3, {sa_family=AF_INET, sin_port=htons(5001), sin_addr=inet_addr("127.0.0.1")}, 16) = 0`
	evs, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	tree := Build(evs)
	fs := Analyze(tree, Policy{}, IsTorProgram)
	if len(fs) != 2 || !fs[0].Tor || fs[1].Tor {
		t.Fatalf("findings %v: want the first by tor, the second by the agent", fs)
	}
	if tree.Reused != 1 {
		t.Errorf("Reused = %d, want 1", tree.Reused)
	}
}

func TestAnalyze(t *testing.T) {
	evs := parseFile(t, "go-exec-tor.strace")
	fs := Analyze(Build(evs), Policy{ConfigDir: "/tmp/a", SocksPorts: []int{40123}}, IsTorProgram)
	var got []string
	for _, f := range fs {
		got = append(got, f.String())
	}
	want := []string{
		`line 12: agent task 22601 connect → AF_INET 127.0.0.1:40123 [inet:tor-socks] = -1 EINPROGRESS (Operation now in progress)`,
		`line 13: tor task 22610 connect → AF_INET 127.0.0.1:5001 [inet:loopback] = -1 EINPROGRESS (Operation now in progress)`,
		`line 14: agent task 22602 connect → AF_UNIX "/tmp/a/tor-data/control.sock" [unix:config-dir] = 0`,
		`line 15: agent task 22601 sendto → {sa_family=AF_NETLINK, nl_pid=0, nl_groups=00000000} [netlink] = 17`,
		`line 16: agent task 22602 sendto → (connected socket) [connected-socket] = 29`,
		`line 17: agent task 22602 connect → AF_INET 10.255.255.53:53 [dns] = 0`,
		`line 18: agent task 22603 connect → AF_INET6 [2001:db8::1]:443 [inet6] = ?`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("findings:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	agent := Count(fs, false)
	wantAgent := map[string]int{"inet:tor-socks connect": 1, "unix:config-dir connect": 1, "netlink sendto": 1,
		"connected-socket sendto": 1, "dns connect": 1, "inet6 connect": 1}
	if !reflect.DeepEqual(agent, wantAgent) {
		t.Errorf("agent counts %v, want %v", agent, wantAgent)
	}
	var bad []string
	for _, f := range fs {
		if !f.Tor && !f.Class.Allowed() {
			bad = append(bad, string(f.Class))
		}
	}
	if !reflect.DeepEqual(bad, []string{"dns", "inet6"}) {
		t.Errorf("disallowed agent classes %v, want [dns inet6]", bad)
	}
}

func TestAnalyzeUnparsedIsNotAllowed(t *testing.T) {
	// A destination the parser cannot read must fail the check, not
	// vanish from it.
	evs, err := Parse(strings.NewReader(`1 connect(3, {sa_family=AF_INET, sin_port=htons(443), sin_addr=0x7f}, 16) = 0`))
	if err != nil {
		t.Fatal(err)
	}
	fs := Analyze(Build(evs), Policy{}, IsTorProgram)
	if len(fs) != 1 || fs[0].Class != Unparsed || fs[0].Class.Allowed() {
		t.Fatalf("findings %v: want one unparsed, disallowed", fs)
	}
	if !strings.Contains(fs[0].String(), "sin_addr=0x7f") {
		t.Errorf("finding %q does not show the raw arguments", fs[0])
	}
}

func TestIsTorProgram(t *testing.T) {
	for p, want := range map[string]bool{"/usr/sbin/tor": true, "tor": true, "/usr/bin/obfs4proxy": true,
		"/usr/bin/torsocks": false, "/tmp/x/mmogit": false, "/usr/bin/tor-gencert": false} {
		if IsTorProgram(p) != want {
			t.Errorf("IsTorProgram(%q) != %t", p, want)
		}
	}
}
