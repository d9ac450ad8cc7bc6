/**
 * The C every reproducer shares, after its generated tables: the guest image, the checks, the
 * host's actions (CPU affinity, perf_event_open users, host work, the VMM's ioctls, save/restore
 * into a fresh VM) and the run loop. Two harnesses sit under it: the standalone one (raw /dev/kvm
 * ioctls, exit 0/1/2/77) and the KVM selftest one (the selftest library, kselftest exit codes);
 * each defines the few `vcpu_*`/`vm_*`-level helpers below marked "harness".
 */

/** Shared by both harnesses; expects the generated part and the harness's primitives above it. */
export const COMMON_C = String.raw`
#ifndef __maybe_unused
#define __maybe_unused __attribute__((unused))
#endif
/* ---- the guest image ---------------------------------------------------------------- */

static uint8_t *mem; /* the guest region: GUEST_SIZE bytes at GUEST_BASE */

static uint64_t *gq(uint64_t gva)
{
	return (uint64_t *)(mem + (gva - GUEST_BASE));
}

static uint64_t stub_entry(unsigned v)
{
	if (v == 2)
		return GUEST_BASE + STUB_NMI;
	if (v == 13)
		return GUEST_BASE + STUB_GP;
	if (v >= 32)
		return GUEST_BASE + STUB_IRQ_ENTRIES + 16 * (v - 32);
	return GUEST_BASE + STUB_FATAL + 8 * v;
}

static void put_code(const struct code_run *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (uint32_t k = 0; k < r[i].repeat; k++)
			memcpy(mem + r[i].off + k * r[i].len, r[i].bytes, r[i].len);
}

/* Identity-mapped 4 MiB at GUEST_BASE: paging, GDT, TSS, IDT, stubs, the program. */
static void build_guest_image(void)
{
	uint64_t *pml4 = gq(GUEST_BASE + OFF_PML4), *pdpt = gq(GUEST_BASE + OFF_PDPT);
	uint64_t *pd = gq(GUEST_BASE + OFF_PD), *idt = gq(GUEST_BASE + OFF_IDT);

	memset(mem, 0, GUEST_SIZE);
	/* 2 MiB pages, present, writable, user (work at CPL 3 runs on the same pages). */
	pml4[(GUEST_BASE >> 39) & 511] = (GUEST_BASE + OFF_PDPT) | 7;
	pdpt[(GUEST_BASE >> 30) & 511] = (GUEST_BASE + OFF_PD) | 7;
	for (int i = 0; i < GUEST_SIZE / 0x200000; i++)
		pd[((GUEST_BASE >> 21) & 511) + i] = (GUEST_BASE + i * 0x200000ull) | 0x87;
	memcpy(gq(GUEST_BASE + OFF_GDT), gdt_init, sizeof(gdt_init));
	*(uint64_t *)(mem + OFF_TSS + 4) = GUEST_BASE + OFF_RSP0; /* TSS.RSP0 */
	*(uint16_t *)(mem + OFF_TSS + 102) = 104; /* no I/O permission bitmap */

	put_code(stub_code, sizeof(stub_code) / sizeof(stub_code[0]));
	/* Fixed vectors: push %rax; mov $v,%eax; jmp <common logger>. */
	for (unsigned v = 32; v < 256; v++) {
		uint8_t *p = mem + (stub_entry(v) - GUEST_BASE);
		int32_t rel = (int32_t)(GUEST_BASE + STUB_IRQ_COMMON - (stub_entry(v) + 11));

		p[0] = 0x50;
		p[1] = 0xb8;
		memcpy(p + 2, &v, 4);
		p[6] = 0xe9;
		memcpy(p + 7, &rel, 4);
	}
	/* Any other vector below 32: mov $v,%al; out %al,$PORT_FATAL; jmp . */
	for (unsigned v = 0; v < 32; v++) {
		uint8_t *p = mem + (stub_entry(v) - GUEST_BASE);

		if (v == 2 || v == 13)
			continue;
		p[0] = 0xb0;
		p[1] = v;
		p[2] = 0xe6;
		p[3] = PORT_FATAL;
		p[4] = 0xeb;
		p[5] = 0xfe;
	}
	for (unsigned v = 0; v < 256; v++) {
		uint64_t h = stub_entry(v);

		/* 64-bit interrupt gate, present, DPL 0, kernel CS. */
		idt[2 * v] = (h & 0xffff) | ((uint64_t)SEL_KERNEL_CS << 16) | (0x8eull << 40) |
			     (((h >> 16) & 0xffff) << 48);
		idt[2 * v + 1] = h >> 32;
	}
	for (size_t i = 0; i < sizeof(far_ptrs) / sizeof(far_ptrs[0]); i++) {
		*gq(GUEST_BASE + OFF_FAR_PTRS + 16 * i) = far_ptrs[i].offset;
		*(uint16_t *)gq(GUEST_BASE + OFF_FAR_PTRS + 16 * i + 8) = far_ptrs[i].selector;
	}
	put_code(guest_code, sizeof(guest_code) / sizeof(guest_code[0]));
	for (unsigned k = 0; k < NR_SLOTS; k++)
		*gq(GUEST_BASE + OFF_OBS + 16 * k + 8) = VEC_NOT_RUN;
	/* XSAVES area header: compacted format, component 15 in its init state. */
	*gq(GUEST_BASE + OFF_XSAVE + 512 + 8) = (1ull << 63) | (1ull << 15);
}

static void fill_sregs(struct kvm_sregs *s)
{
	struct kvm_segment code = { .base = 0, .limit = 0xffffffff, .selector = SEL_KERNEL_CS,
				    .type = 11, .present = 1, .dpl = 0, .db = 0, .s = 1, .l = 1, .g = 1 };
	struct kvm_segment data = { .base = 0, .limit = 0xffffffff, .selector = SEL_KERNEL_DS,
				    .type = 3, .present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1 };
	struct kvm_segment tr = { .base = GUEST_BASE + OFF_TSS, .limit = 0x67, .selector = SEL_TSS,
				  .type = 11, .present = 1, .s = 0 };

	s->cs = code;
	s->ds = s->es = s->fs = s->gs = s->ss = data;
	s->tr = tr;
	memset(&s->ldt, 0, sizeof(s->ldt));
	s->ldt.unusable = 1;
	s->gdt.base = GUEST_BASE + OFF_GDT;
	s->gdt.limit = sizeof(gdt_init) - 1;
	s->idt.base = GUEST_BASE + OFF_IDT;
	s->idt.limit = 256 * 16 - 1;
	s->cr0 = 0x80000033; /* PG, NE, ET, MP, PE */
	s->cr3 = GUEST_BASE + OFF_PML4;
	/* PAE, OSFXSR, OSXMMEXCPT (CR4.PCE stays 0: RDPMC above CPL 0 faults, as the model has it). */
	s->cr4 = 0x620 | (NEEDS_XSAVES ? 0x40000 /* OSXSAVE */ : 0);
	s->efer = 0x500 | 1; /* LME, LMA, SCE (SYSCALL/SYSRET for work above CPL 0) */
	s->apic_base = 0xfee00000ull | 0x800 | 0x400 | 0x100; /* enabled, x2APIC, BSP */
}

/* ---- what went wrong: a divergence (exit 1), a missing feature (77), a harness error (2) ---- */

static const char *expect_text(const struct check *c, char *buf, size_t n)
{
	switch (c->mode) {
	case M_EXACT:
		snprintf(buf, n, "0x%llx", (unsigned long long)c->a);
		break;
	case M_MASK:
		snprintf(buf, n, "0x%llx in the bits 0x%llx", (unsigned long long)c->a, (unsigned long long)c->b);
		break;
	case M_RANGE:
		snprintf(buf, n, "0x%llx..0x%llx", (unsigned long long)c->a, (unsigned long long)c->b);
		break;
	case M_AT_LEAST:
		snprintf(buf, n, "at least 0x%llx", (unsigned long long)c->a);
		break;
	case M_AT_MOST:
		snprintf(buf, n, "at most 0x%llx", (unsigned long long)c->b);
		break;
	default:
		snprintf(buf, n, "anything");
	}
	return buf;
}

static int meets(const struct check *c, uint64_t v)
{
	switch (c->mode) {
	case M_EXACT:
		return v == c->a;
	case M_MASK:
		return (v & c->b) == c->a;
	case M_RANGE:
		return v >= c->a && v <= c->b;
	case M_AT_LEAST:
		return v >= c->a;
	case M_AT_MOST:
		return v <= c->b;
	default:
		return 1;
	}
}

static const char *vector_text(uint64_t v)
{
	return v == 0 ? "no exception" : v == 13 ? "#GP" : v == VEC_NOT_RUN ? "not executed" : "an exception";
}

/* ---- the checks ------------------------------------------------------------------------ */

static unsigned next_check;

static uint64_t pmi_count(void)
{
	return *gq(GUEST_BASE + OFF_PMI_COUNT);
}

static int in_stubs(uint64_t rip)
{
	return rip >= GUEST_BASE + OFF_STUBS && rip < GUEST_BASE + OFF_CODE;
}

static void check_pmi(const struct check *c)
{
	unsigned i = c->val_off;
	uint64_t vec, rip;

	if (i >= pmi_count())
		divergence(c->what, "no PMI #%u; bare metal delivers vector %d at a RIP in 0x%llx..0x%llx", i + 1, c->vec,
			   (unsigned long long)c->a, (unsigned long long)c->b);
	vec = *gq(GUEST_BASE + OFF_PMI_VEC + 8 * i);
	rip = *gq(GUEST_BASE + OFF_PMI_RIP + 8 * i);
	if (vec != (uint64_t)c->vec)
		divergence(c->what, "PMI #%u has vector %llu, bare metal %d", i + 1, (unsigned long long)vec, c->vec);
	/* The window allows for skid up to the next instruction that observes, and for handlers. */
	if ((rip < c->a || rip > c->b) && !in_stubs(rip))
		divergence(c->what, "PMI #%u came at RIP 0x%llx, bare metal between 0x%llx and 0x%llx", i + 1,
			   (unsigned long long)rip, (unsigned long long)c->a, (unsigned long long)c->b);
}

/* Everything due by sync point @due (NR_SYNCS + 1 is the end), in program order. */
static void check_due(unsigned due)
{
	char buf[96];

	if (MODE == MODE_DIFFERENTIAL)
		return; /* the two runs are compared with each other at the end */
	for (; next_check < NR_CHECKS && checks[next_check].due <= due; next_check++) {
		const struct check *c = &checks[next_check];
		uint64_t vec, v;

		if (c->kind == C_PMI) {
			check_pmi(c);
			continue;
		}
		vec = *gq(c->vec_at);
		if (vec == VEC_NOT_RUN)
			harness_error("%s: the guest never got there", c->what);
		if (c->vec >= 0 && vec != (uint64_t)c->vec)
			divergence(c->what, "%s, bare metal %s", vector_text(vec), vector_text(c->vec));
		if (!c->val_at || vec != 0 || c->mode == M_NONE)
			continue;
		v = *gq(c->val_at);
		if (!meets(c, v))
			divergence(c->what, "0x%llx, bare metal %s", (unsigned long long)v, expect_text(c, buf, sizeof(buf)));
	}
	if (pmi_count() > pmi_max_by[due - 1]) {
		unsigned i = pmi_max_by[due - 1];

		divergence("PMIs", "PMI #%u (vector %llu at RIP 0x%llx), bare metal delivers %u by then", i + 1,
			   (unsigned long long)*gq(GUEST_BASE + OFF_PMI_VEC + 8 * i),
			   (unsigned long long)*gq(GUEST_BASE + OFF_PMI_RIP + 8 * i), pmi_max_by[due - 1]);
	}
	if (due == NR_SYNCS + 1 && pmi_count() < PMI_MIN)
		divergence("PMIs", "%llu PMIs, bare metal delivers %u", (unsigned long long)pmi_count(), PMI_MIN);
}

/* ---- host CPUs --------------------------------------------------------------------------- */

/* The program's pCPU k is the k-th CPU this process may run on. */
static int pcpu[NR_PCPUS > 0 ? NR_PCPUS : 1];

static void pick_pcpus(void)
{
	cpu_set_t m;
	int k = 0;

	if (sched_getaffinity(0, sizeof(m), &m))
		harness_error("sched_getaffinity: %s", strerror(errno));
	for (int c = 0; c < CPU_SETSIZE && k < NR_PCPUS; c++)
		if (CPU_ISSET(c, &m))
			pcpu[k++] = c;
	if (k < NR_PCPUS)
		skip("the program uses %d pCPUs, this process may run on %d", NR_PCPUS, k);
}

static __maybe_unused void pin_to(int cpu)
{
	cpu_set_t m;

	CPU_ZERO(&m);
	CPU_SET(cpu, &m);
	if (sched_setaffinity(0, sizeof(m), &m))
		skip("sched_setaffinity(CPU %d): %s", cpu, strerror(errno));
}

/* The host scheduler moves the vCPU thread (this thread) to the program's pCPU @k. */
static __maybe_unused void host_migrate(int k)
{
	pin_to(pcpu[k % NR_PCPUS]);
}

/* ---- host work: a task runs on a pCPU while the vCPU thread waits ----------------------------- */

struct work {
	int cpu;
	long user, kernel;
};

static __maybe_unused void *work_fn(void *arg)
{
	struct work *w = arg;
	cpu_set_t m;
	long n = w->user / 2;

	CPU_ZERO(&m);
	CPU_SET(w->cpu, &m);
	pthread_setaffinity_np(pthread_self(), sizeof(m), &m);
	/* User-mode work: two instructions per iteration (dec; jnz). */
	if (n > 0)
		asm volatile("1: dec %0; jnz 1b" : "+r"(n) : : "cc");
	/* Kernel-mode work: system calls (not an exact instruction count). */
	for (long i = 0; i < w->kernel / 1000; i++)
		syscall(SYS_getppid);
	return NULL;
}

static __maybe_unused void run_work(int cpu, long user, long kernel)
{
	struct work w = { cpu, user, kernel };
	pthread_t t;

	if (pthread_create(&t, NULL, work_fn, &w))
		harness_error("pthread_create: %s", strerror(errno));
	pthread_join(t, NULL);
}

static __maybe_unused void host_work(int k, long user, long kernel)
{
	run_work(pcpu[k % NR_PCPUS], user, kernel);
}

/* Another task runs on the vCPU thread's CPU while the vCPU thread sleeps in pthread_join. */
static __maybe_unused void host_preempt(long user, long kernel)
{
	run_work(sched_getcpu(), user, kernel);
}

/* ---- host perf users ---------------------------------------------------------------------- */

#define ON_VCPU_THREAD (-1)
#define MAX_HOST_EVENTS 64

struct host_attr {
	uint64_t config, sample_period;
	unsigned pinned : 1, exclusive : 1, exclude_user : 1, exclude_kernel : 1, exclude_host : 1,
		exclude_guest : 1, branch_stack : 1, branch_user : 1, branch_kernel : 1, branch_call_stack : 1;
};

static struct host_event {
	int fd;
	void *ring;
	size_t ring_size;
	int exclude_guest;
	uint64_t sample_period;
	uint64_t final; /* the count when it was closed */
} host_events[MAX_HOST_EVENTS];
static int nr_host_events;

static __maybe_unused void host_open(const struct host_attr *h, int k)
{
	struct perf_event_attr a;
	struct host_event *e;

	if (nr_host_events == MAX_HOST_EVENTS)
		harness_error("more than %d host events", MAX_HOST_EVENTS);
	memset(&a, 0, sizeof(a));
	a.type = PERF_TYPE_RAW;
	a.size = sizeof(a);
	a.config = h->config;
	/* The model's periods are tiny (its work units are); perf throttles such an event, which is fine. */
	a.sample_period = h->sample_period;
	a.pinned = h->pinned;
	a.exclusive = h->exclusive;
	a.exclude_user = h->exclude_user;
	a.exclude_kernel = h->exclude_kernel;
	a.exclude_host = h->exclude_host;
	a.exclude_guest = h->exclude_guest;
	if (h->sample_period)
		a.sample_type = PERF_SAMPLE_IP;
	if (h->branch_stack) {
		a.sample_type |= PERF_SAMPLE_BRANCH_STACK;
		a.branch_sample_type = PERF_SAMPLE_BRANCH_ANY | (h->branch_user ? PERF_SAMPLE_BRANCH_USER : 0) |
				       (h->branch_kernel ? PERF_SAMPLE_BRANCH_KERNEL : 0) |
				       (h->branch_call_stack ? PERF_SAMPLE_BRANCH_CALL_STACK : 0);
	}
	e = &host_events[nr_host_events];
	e->fd = syscall(__NR_perf_event_open, &a, k == ON_VCPU_THREAD ? 0 : -1,
			k == ON_VCPU_THREAD ? -1 : pcpu[k % NR_PCPUS], -1, PERF_FLAG_FD_CLOEXEC);
	if (e->fd < 0)
		skip("perf_event_open(config 0x%llx%s) refused: %s (is /proc/sys/kernel/perf_event_paranoid <= 0?)",
		     (unsigned long long)h->config, h->branch_stack ? ", branch stack" : "", strerror(errno));
	e->exclude_guest = h->exclude_guest;
	e->sample_period = a.sample_period;
	if (h->sample_period) {
		e->ring_size = (1 + 16) * 4096;
		e->ring = mmap(NULL, e->ring_size, PROT_READ | PROT_WRITE, MAP_SHARED, e->fd, 0);
		if (e->ring == MAP_FAILED)
			e->ring = NULL;
	}
	nr_host_events++;
}

static __maybe_unused void host_event_enable(int i)
{
	ioctl(host_events[i].fd, PERF_EVENT_IOC_ENABLE, 0);
}

static __maybe_unused void host_event_disable(int i)
{
	ioctl(host_events[i].fd, PERF_EVENT_IOC_DISABLE, 0);
}

static __maybe_unused uint64_t host_event_count(int i)
{
	uint64_t v = 0;

	if (host_events[i].fd < 0)
		return host_events[i].final;
	if (read(host_events[i].fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

static __maybe_unused void host_event_read(int i)
{
	printf("host event %d counts %llu\n", i, (unsigned long long)host_event_count(i));
}

static __maybe_unused void host_event_close(int i)
{
	/* The count stays readable, and the samples: the ring is unmapped at the end of the run. */
	host_events[i].final = host_event_count(i);
	close(host_events[i].fd);
	host_events[i].fd = -1;
}

/* Samples of an exclude_guest host event that perf marked as taken in the guest. */
static __maybe_unused unsigned guest_samples(int i)
{
	struct host_event *e = &host_events[i];
	struct perf_event_mmap_page *pg = e->ring;
	uint64_t head, pos;
	unsigned n = 0;

	if (!pg)
		return 0;
	head = __atomic_load_n(&pg->data_head, __ATOMIC_ACQUIRE);
	for (pos = pg->data_tail; pos + sizeof(struct perf_event_header) <= head;) {
		struct perf_event_header hdr;
		size_t off = pos % (e->ring_size - 4096);

		if (off + sizeof(hdr) > e->ring_size - 4096)
			break; /* a record wrapped: stop counting there */
		memcpy(&hdr, (uint8_t *)pg + 4096 + off, sizeof(hdr));
		if (hdr.size == 0)
			break;
		if (hdr.type == PERF_RECORD_SAMPLE) {
			unsigned mode = hdr.misc & PERF_RECORD_MISC_CPUMODE_MASK;

			if (mode == PERF_RECORD_MISC_GUEST_KERNEL || mode == PERF_RECORD_MISC_GUEST_USER)
				n++;
		}
		pos += hdr.size;
	}
	return n;
}

/* The end of a run: keep the final counts, let the run's verdict read the samples, then free everything. */
static void close_host_events(void)
{
	for (int i = 0; i < nr_host_events; i++) {
		if (host_events[i].fd >= 0)
			host_event_close(i);
		if (host_events[i].ring)
			munmap(host_events[i].ring, host_events[i].ring_size);
		host_events[i].ring = NULL;
	}
}

/* ---- an external interrupt while the guest runs: a timer signal kicks the vCPU out ---------- */

static timer_t irq_timer;
static int irq_timer_on;

static __maybe_unused void irq_signal(int sig)
{
	(void)sig;
}

static __maybe_unused void irq_timer_start(void)
{
	struct sigevent ev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGUSR1 };
	struct itimerspec its = { .it_interval = { 0, 100000 }, .it_value = { 0, 100000 } };

	signal(SIGUSR1, irq_signal);
	ev._sigev_un._tid = syscall(SYS_gettid);
	if (timer_create(CLOCK_MONOTONIC, &ev, &irq_timer) || timer_settime(irq_timer, 0, &its, NULL))
		skip("timer_create: %s", strerror(errno));
	irq_timer_on = 1;
}

static void irq_timer_stop(void)
{
	if (!irq_timer_on)
		return;
	timer_delete(irq_timer);
	irq_timer_on = 0;
}

/* ---- the VMM's ioctls, checked against what KVM's ABI makes of them ---------------------- */

enum { EXPECT_OK, EXPECT_REFUSED, EXPECT_ANY };

static struct kvm_cpuid2 *supported; /* KVM_GET_SUPPORTED_CPUID */

static struct kvm_cpuid_entry2 *cpuid_entry(struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == idx)
			return &c->entries[i];
	return NULL;
}

/*
 * The CPUID a guest model stands for: what KVM supports, with the model's leaf 0AH, PDCM and
 * TSX, x2APIC on (the PMI handler's EOI), and its family/model unless it is the model host's
 * own (then the real host's: KVM gives LBRs only to a guest of the host's model).
 */
static struct kvm_cpuid2 *cpuid_of(const struct guest_model *g)
{
	size_t sz = sizeof(*supported) + supported->nent * sizeof(supported->entries[0]);
	struct kvm_cpuid2 *c = malloc(sz);
	struct kvm_cpuid_entry2 *e;

	memcpy(c, supported, sz);
	e = cpuid_entry(c, 0xa, 0);
	if (e) {
		e->eax = g->eax;
		e->ebx = g->ebx;
		e->ecx = g->ecx;
		e->edx = g->edx;
	}
	e = cpuid_entry(c, 1, 0);
	if (e) {
		e->ecx = (e->ecx & ~(1u << 15)) | (g->pdcm ? 1u << 15 : 0) | 1u << 21;
		if (g->family != HOST_FAMILY || g->model != HOST_MODEL)
			e->eax = (e->eax & ~0x0fff0ff0u) | ((g->family & 0xf) << 8) | ((g->model & 0xf) << 4) |
				 ((g->model >> 4) << 16) | (g->family > 0xf ? (g->family - 0xf) << 20 : 0);
	}
	e = cpuid_entry(c, 7, 0);
	if (e && !g->tsx)
		e->ebx &= ~((1u << 4) | (1u << 11)); /* HLE, RTM */
	return c;
}

static int set_msr(uint32_t index, uint64_t value) /* harness: KVM_SET_MSRS of one MSR, returns 1 if set */
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} b = { .hdr.nmsrs = 1, .e.index = index, .e.data = value };

	return vcpu_set_msrs_ioctl(&b.hdr);
}

static __maybe_unused int get_msr(uint32_t index, uint64_t *value)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} b = { .hdr.nmsrs = 1, .e.index = index };
	int r = vcpu_get_msrs_ioctl(&b.hdr);

	*value = b.e.data;
	return r;
}

static const struct guest_model *current_model = &guest;
static struct kvm_pmu_event_filter *current_filter;

/* KVM_SET_CPUID2, then PERF_CAPABILITIES with PDCM: returns 0 if both were taken. */
static int apply_model(const struct guest_model *g)
{
	struct kvm_cpuid2 *c = cpuid_of(g);
	int r = set_cpuid(c);

	free(c);
	if (r == 0 && g->pdcm && set_msr(MSR_IA32_PERF_CAPABILITIES, g->perf_capabilities) != 1)
		r = -1;
	return r;
}

static __maybe_unused void expect_result(const char *what, int ok, int expect)
{
	if (expect == EXPECT_OK && !ok)
		divergence(what, "refused, KVM's ABI accepts it");
	if (expect == EXPECT_REFUSED && ok)
		divergence(what, "accepted, KVM's ABI refuses it");
}

static __maybe_unused void vmm_set_cpuid(const char *what, const struct guest_model *g, int expect)
{
	int ok = apply_model(g) == 0;

	if (ok)
		current_model = g;
	expect_result(what, ok, expect);
}

static __maybe_unused void vmm_set_msr(const char *what, uint32_t index, uint64_t value, int expect)
{
	expect_result(what, set_msr(index, value) == 1, expect);
}

static __maybe_unused void vmm_get_msr(const char *what, uint32_t index, int has, uint64_t want)
{
	uint64_t v;
	int ok = get_msr(index, &v) == 1;

	if (!has)
		return;
	if (!ok)
		divergence(what, "refused, KVM's ABI reads 0x%llx", (unsigned long long)want);
	if (v != want)
		divergence(what, "0x%llx, KVM's ABI reads 0x%llx", (unsigned long long)v, (unsigned long long)want);
}

/* The PMU MSRs KVM_GET_MSR_INDEX_LIST may list (msrs_to_save_pmu): counters, selectors, fixed and global controls. */
static int is_saved_pmu_msr(uint32_t m)
{
	return (m >= MSR_IA32_PERFCTR0 && m < MSR_IA32_PERFCTR0 + 8) || (m >= MSR_P6_EVNTSEL0 && m < MSR_P6_EVNTSEL0 + 8) ||
	       (m >= MSR_CORE_PERF_FIXED_CTR0 && m < MSR_CORE_PERF_FIXED_CTR0 + 4) || m == MSR_CORE_PERF_FIXED_CTR_CTRL ||
	       m == MSR_CORE_PERF_GLOBAL_STATUS || m == MSR_CORE_PERF_GLOBAL_CTRL;
}

static __maybe_unused struct kvm_msr_list *msr_index_list(void)
{
	struct kvm_msr_list probe = { .nmsrs = 0 }, *l;

	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) == 0 || errno != E2BIG)
		harness_error("KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
	l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(uint32_t));
	l->nmsrs = probe.nmsrs;
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, l))
		harness_error("KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
	return l;
}

/* What a VMM saving the vCPU does: every listed PMU MSR survives KVM_GET_MSRS then KVM_SET_MSRS. */
static __maybe_unused void vmm_round_trip(const char *what)
{
	struct kvm_msr_list *l = msr_index_list();
	char buf[160];

	for (uint32_t i = 0; i < l->nmsrs; i++) {
		uint32_t m = l->indices[i];
		uint64_t v, again;

		if (!is_saved_pmu_msr(m))
			continue;
		snprintf(buf, sizeof(buf), "%s: MSR 0x%x", what, m);
		if (get_msr(m, &v) != 1)
			divergence(buf, "KVM_GET_MSRS refuses an MSR KVM_GET_MSR_INDEX_LIST lists");
		if (set_msr(m, v) != 1)
			divergence(buf, "KVM_SET_MSRS refuses 0x%llx, the value KVM_GET_MSRS read", (unsigned long long)v);
		if (get_msr(m, &again) != 1 || again != v)
			divergence(buf, "reads 0x%llx after the round trip, 0x%llx before", (unsigned long long)again,
				   (unsigned long long)v);
	}
	free(l);
}

/* nevents events: the nlisted listed, then fill up to nevents (a filter of 300 of one event is one line). */
struct filter_spec {
	uint32_t action, flags, fixed_counter_bitmap, nevents, nlisted;
	uint64_t fill;
	const uint64_t *events;
};

/* An ioctl's result against KVM's ABI: taken or refused and, where the ABI names it, with which errno. */
static __maybe_unused void expect_errno_result(const char *what, int err, int expect, int expect_errno)
{
	expect_result(what, err == 0, expect);
	if (expect == EXPECT_REFUSED && err != 0 && expect_errno != 0 && err != expect_errno)
		divergence(what, "refused with %s, KVM's ABI refuses it with %s", strerror(err), strerror(expect_errno));
}

static __maybe_unused void vmm_set_filter(const char *what, const struct filter_spec *f, int install, int expect,
					  int expect_errno)
{
	uint32_t n = install ? f->nevents : 0, i;
	struct kvm_pmu_event_filter *k = calloc(1, sizeof(*k) + (n + 1) * sizeof(uint64_t));
	int r;

	if (install) {
		k->action = f->action;
		k->flags = f->flags;
		k->fixed_counter_bitmap = f->fixed_counter_bitmap;
		k->nevents = n;
		for (i = 0; i < n; i++)
			k->events[i] = i < f->nlisted ? f->events[i] : f->fill;
	} else {
		k->action = KVM_PMU_EVENT_DENY; /* an empty deny list removes the filter */
	}
	r = set_filter_ioctl(k) == 0 ? 0 : errno;
	expect_errno_result(what, r, expect, expect_errno);
	/* A refused filter changes nothing: the VM keeps the one it had. */
	if (r != 0) {
		free(k);
		return;
	}
	free(current_filter);
	current_filter = k;
}

/* ---- the VMM's save and restore into a fresh VM (QEMU's order) -------------------------------- */

/* QEMU's kvm_put_msrs order for the PMU: capabilities, counters, status, selectors, fixed control, the rest, global control. */
static __maybe_unused int restore_rank(uint32_t m)
{
	if (!is_saved_pmu_msr(m) && m != MSR_IA32_PERF_CAPABILITIES && (m < MSR_IA32_PMC0 || m >= MSR_IA32_PMC0 + 8))
		return -1;
	if (m == MSR_IA32_PERF_CAPABILITIES)
		return 0;
	if ((m >= MSR_IA32_PERFCTR0 && m < MSR_IA32_PERFCTR0 + 8) || (m >= MSR_IA32_PMC0 && m < MSR_IA32_PMC0 + 8) ||
	    (m >= MSR_CORE_PERF_FIXED_CTR0 && m < MSR_CORE_PERF_FIXED_CTR0 + 4))
		return 1;
	if (m == MSR_CORE_PERF_GLOBAL_STATUS)
		return 2;
	if (m >= MSR_P6_EVNTSEL0 && m < MSR_P6_EVNTSEL0 + 8)
		return 3;
	if (m == MSR_CORE_PERF_FIXED_CTR_CTRL)
		return 4;
	if (m == MSR_CORE_PERF_GLOBAL_CTRL)
		return 6;
	return 5;
}

static struct kvm_msr_entry *saved_msrs;
static uint32_t nr_saved_msrs;

static __maybe_unused void save_msrs(void)
{
	struct kvm_msr_list *l = msr_index_list();
	struct kvm_msrs *b = calloc(1, sizeof(*b) + l->nmsrs * sizeof(struct kvm_msr_entry));
	int got;

	b->nmsrs = l->nmsrs;
	for (uint32_t i = 0; i < l->nmsrs; i++)
		b->entries[i].index = l->indices[i];
	got = vcpu_get_msrs_ioctl(b);
	if (got != (int)b->nmsrs)
		divergence("save: KVM_GET_MSRS of KVM_GET_MSR_INDEX_LIST", "stops at MSR 0x%x", b->entries[got].index);
	/* Restore order: rank, stable. */
	free(saved_msrs);
	saved_msrs = calloc(b->nmsrs, sizeof(*saved_msrs));
	nr_saved_msrs = 0;
	for (int r = -1; r <= 6; r++)
		for (uint32_t i = 0; i < b->nmsrs; i++)
			if (restore_rank(b->entries[i].index) == r)
				saved_msrs[nr_saved_msrs++] = b->entries[i];
	free(b);
	free(l);
}

static __maybe_unused void restore_msrs(void)
{
	for (uint32_t i = 0; i < nr_saved_msrs; i++)
		if (set_msr(saved_msrs[i].index, saved_msrs[i].data) != 1)
			divergence("restore: KVM_SET_MSRS", "refuses MSR 0x%x = 0x%llx, which KVM_GET_MSRS returned",
				   saved_msrs[i].index, (unsigned long long)saved_msrs[i].data);
}

/* ---- the environment: what the program needs of the host (exit 77 without it) ---------------- */

static uint64_t feature_msr(uint32_t index) /* KVM_GET_MSRS on /dev/kvm */
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} b = { .hdr.nmsrs = 1, .e.index = index };

	return ioctl(kvm_fd, KVM_GET_MSRS, &b) == 1 ? b.e.data : 0;
}

/* The vPMU KVM offers must hold a guest model: version, counters, widths, PERF_CAPABILITIES. */
static void check_model_fits(const struct guest_model *g)
{
	struct kvm_cpuid_entry2 *a = cpuid_entry(supported, 0xa, 0), *one = cpuid_entry(supported, 1, 0);
	unsigned ver = g->eax & 0xff, gp = (g->eax >> 8) & 0xff, gpw = (g->eax >> 16) & 0xff;
	unsigned fx = g->edx & 0x1f, fxw = (g->edx >> 5) & 0xff;
	uint64_t caps = feature_msr(MSR_IA32_PERF_CAPABILITIES);

	if (!a || (a->eax & 0xff) == 0)
		skip("KVM offers no vPMU (CPUID.0AH:EAX[7:0] = 0)");
	if (ver > (a->eax & 0xff))
		skip("the guest has PMU version %u, KVM offers %u", ver, a->eax & 0xff);
	if (gp > ((a->eax >> 8) & 0xff) || (gp && gpw != ((a->eax >> 16) & 0xff)))
		skip("the guest has %u GP counters of %u bits, KVM offers %u of %u", gp, gpw, (a->eax >> 8) & 0xff,
		     (a->eax >> 16) & 0xff);
	if (ver >= 2 && (fx > (a->edx & 0x1f) || (fx && fxw != ((a->edx >> 5) & 0xff))))
		skip("the guest has %u fixed counters of %u bits, KVM offers %u of %u", fx, fxw, a->edx & 0x1f,
		     (a->edx >> 5) & 0xff);
	if (g->pdcm && !(one && (one->ecx & (1u << 15))))
		skip("KVM offers no PDCM");
	if (g->pdcm && (g->perf_capabilities & ~caps))
		skip("the guest's PERF_CAPABILITIES 0x%llx has bits KVM does not offer (0x%llx)",
		     (unsigned long long)g->perf_capabilities, (unsigned long long)caps);
	if (g->pdcm && (g->perf_capabilities & 0x3f) && (g->perf_capabilities & 0x3f) != (caps & 0x3f))
		skip("the guest's LBR format %llu is not the host's %llu", (unsigned long long)(g->perf_capabilities & 0x3f),
		     (unsigned long long)(caps & 0x3f));
	if (g->tsx) {
		struct kvm_cpuid_entry2 *s = cpuid_entry(supported, 7, 0);

		if (!s || !(s->ebx & (1u << 11)))
			skip("the guest has TSX, KVM offers none");
	}
}

static __maybe_unused void check_host_pmu(void)
{
	unsigned a, b, c, d;

	host_cpuid(0xa, &a, &b, &c, &d);
	(void)b;
	(void)c;
	if (((a >> 8) & 0xff) != HOST_GP_COUNTERS || (d & 0x1f) != HOST_FIXED_COUNTERS)
		skip("the program's host users assume %d GP and %d fixed counters per CPU (the model's %s host); this "
		     "one has %u and %u",
		     HOST_GP_COUNTERS, HOST_FIXED_COUNTERS, HOST_PROFILE, (a >> 8) & 0xff, d & 0x1f);
}

static void check_environment(void)
{
	unsigned a, b, c, d;
	char vendor[13], param = 'Y';
	int fd;

	host_cpuid(0, &a, &b, &c, &d);
	memcpy(vendor, &b, 4);
	memcpy(vendor + 4, &d, 4);
	memcpy(vendor + 8, &c, 4);
	vendor[12] = 0;
	(void)a;
	if (strcmp(vendor, "GenuineIntel"))
		skip("the host CPU is not Intel (%s)", vendor);
	fd = open("/sys/module/kvm/parameters/enable_pmu", O_RDONLY);
	if (fd >= 0) {
		if (read(fd, &param, 1) != 1)
			param = 'Y';
		close(fd);
	}
	if (param == 'N' || param == '0')
		skip("kvm.enable_pmu=N");
	for (int n = 64;; n *= 2) {
		supported = calloc(1, sizeof(*supported) + n * sizeof(supported->entries[0]));
		supported->nent = n;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, supported) == 0)
			break;
		if (errno != E2BIG)
			harness_error("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		free(supported);
	}
	check_model_fits(&guest);
	check_needs();
	pick_pcpus();
}

/* The kvm module's view of the vPMU, printed so a report back says what it ran on. */
static void print_vpmu(void)
{
	const char *p[] = { "enable_pmu", "enable_mediated_pmu" };

	for (int i = 0; i < 2; i++) {
		char path[80], v[8] = "?";
		int fd;

		snprintf(path, sizeof(path), "/sys/module/kvm/parameters/%s", p[i]);
		fd = open(path, O_RDONLY);
		if (fd >= 0) {
			if (read(fd, v, 1) != 1)
				v[0] = '?';
			close(fd);
		} else {
			strcpy(v, "-");
		}
		v[1] = 0;
		printf("kvm.%s=%s ", p[i], v);
	}
	printf("\n");
}

/* ---- verdicts of whole runs --------------------------------------------------------------------- */

static int run_index; /* a differential reproducer's run: 0 without the change, 1 with it */
static uint8_t *snapshot[2]; /* each run's observation slots and PMI log */
#define SNAP_SIZE (OFF_PMI_RIP + 8 * PMI_LOG_MAX - OFF_OBS)
static uint64_t counts_with[MAX_HOST_EVENTS];
static int nr_counts_with;

static uint64_t snap_q(int r, uint64_t gva)
{
	return *(uint64_t *)(snapshot[r] + (gva - GUEST_BASE - OFF_OBS));
}

/* What a run leaves for its mode's verdict; called after the guest's end, before the VM goes. */
static void after_run(void)
{
	if (MODE == MODE_DIFFERENTIAL) {
		snapshot[run_index] = malloc(SNAP_SIZE);
		memcpy(snapshot[run_index], mem + OFF_OBS, SNAP_SIZE);
	}
	if (MODE == MODE_HOST_SAMPLES)
		for (int i = 0; i < nr_host_events; i++) {
			unsigned n = host_events[i].exclude_guest && host_events[i].sample_period ? guest_samples(i) : 0;

			if (n)
				divergence("a host sampling event", "host event %d (exclude_guest) has %u samples marked as taken in the guest; on a host without the guest every one is the host's", i, n);
		}
	close_host_events();
	if (MODE == MODE_HOST_COUNTS) {
		for (int i = 0; i < nr_host_events; i++)
			counts_with[i] = host_events[i].final;
		nr_counts_with = nr_host_events;
	}
}

/* A differential reproducer: the guest's observations of the two runs, where bare metal's are exact. */
static __maybe_unused void compare_runs(void)
{
	uint64_t na = snap_q(0, GUEST_BASE + OFF_PMI_COUNT), nb = snap_q(1, GUEST_BASE + OFF_PMI_COUNT);

	for (unsigned i = 0; i < NR_CHECKS; i++) {
		const struct check *c = &checks[i];
		uint64_t va, vb, m;

		if (c->kind != C_GUEST || c->vec < 0 || (c->val_at && c->mode != M_EXACT && c->mode != M_MASK))
			continue;
		va = snap_q(0, c->vec_at);
		vb = snap_q(1, c->vec_at);
		if (va != vb)
			divergence(c->what, "%s %s, %s %s", vector_text(vb), CHANGED, vector_text(va), UNCHANGED);
		if (!c->val_at || vb != 0)
			continue;
		m = c->mode == M_MASK ? c->b : ~0ull;
		va = snap_q(0, c->val_at) & m;
		vb = snap_q(1, c->val_at) & m;
		if (va != vb)
			divergence(c->what, "0x%llx %s, 0x%llx %s", (unsigned long long)vb, CHANGED, (unsigned long long)va, UNCHANGED);
	}
	if (na != nb)
		divergence("PMIs", "%llu PMIs %s, %llu %s", (unsigned long long)nb, CHANGED, (unsigned long long)na, UNCHANGED);
	for (uint64_t i = 0; i < nb && i < PMI_LOG_MAX; i++) {
		uint64_t a = snap_q(0, GUEST_BASE + OFF_PMI_VEC + 8 * i), b = snap_q(1, GUEST_BASE + OFF_PMI_VEC + 8 * i);

		if (a != b)
			divergence("PMIs", "PMI #%llu has vector %llu %s, %llu %s", (unsigned long long)i + 1,
				   (unsigned long long)b, CHANGED, (unsigned long long)a, UNCHANGED);
	}
}

/* A host-undisturbed reproducer: each host event's count with the guest against the host alone. */
static __maybe_unused void compare_host_counts(void)
{
	for (int i = 0; i < nr_counts_with && i < nr_host_events; i++) {
		uint64_t a = counts_with[i], b = host_events[i].final, d = a > b ? a - b : b - a;
		uint64_t tol = 1000000 + b / 20; /* the host's own noise on the event's CPU or thread */

		if (d > tol)
			divergence("a host user's event", "host event %d counts %llu with the guest, %llu on the host alone (tolerance %llu)", i,
				   (unsigned long long)a, (unsigned long long)b, (unsigned long long)tol);
	}
}

/* The VMM ABI: on a vCPU with all of the host's PMU, every listed counter and control MSR holds a value. */
static __maybe_unused void check_msr_index_list(void)
{
	struct kvm_cpuid_entry2 *a = cpuid_entry(supported, 0xa, 0);
	struct guest_model full = { .family = HOST_FAMILY, .model = HOST_MODEL, .pdcm = 1 };
	struct kvm_msr_list *l = msr_index_list();
	char buf[160];

	full.eax = (a->eax & ~0xffu) | 2;
	full.edx = a->edx;
	full.perf_capabilities = feature_msr(MSR_IA32_PERF_CAPABILITIES) & (1ull << 13); /* FW_WRITES */
	current_model = &full;
	vm_open();
	for (uint32_t i = 0; i < l->nmsrs; i++) {
		uint32_t m = l->indices[i];
		uint64_t v = 0;

		if (!is_saved_pmu_msr(m))
			continue;
		snprintf(buf, sizeof(buf), "KVM_GET_MSR_INDEX_LIST: MSR 0x%x", m);
		if (set_msr(m, 1) != 1)
			divergence(buf, "KVM_SET_MSRS <- 1 refused on a vCPU with all of the host's PMU; a VMM saving it cannot restore it");
		if (get_msr(m, &v) != 1 || v != 1)
			divergence(buf, "0x%llx after KVM_SET_MSRS <- 1 on a vCPU with all of the host's PMU", (unsigned long long)v);
	}
	vm_close();
	free(l);
	current_model = &guest;
}
`;
