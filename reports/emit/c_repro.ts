/**
 * The standalone reproducer's harness: raw /dev/kvm ioctls against the system's <linux/kvm.h>,
 * the guest in long mode from the first instruction, and the exit-code contract
 * 0 (no divergence) / 1 (divergence, the first one printed) / 2 (harness error) / 77 (the host
 * lacks what the program needs).
 */

/** Before the shared code: the primitives it calls. */
export const REPRO_PRELUDE_C = String.raw`
/* ---- exits ------------------------------------------------------------------------------ */

#define EXIT_DIVERGENCE 1
#define EXIT_HARNESS 2
#define EXIT_SKIP 77

static int kvm_fd = -1, vm_fd = -1, vcpu_fd = -1;
static struct kvm_run *run;
static size_t run_size;

__attribute__((noreturn, format(printf, 2, 3))) static void divergence(const char *what, const char *fmt, ...)
{
	va_list ap;

	printf("DIVERGENCE at %s: KVM shows ", what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	exit(EXIT_DIVERGENCE);
}

__attribute__((noreturn, format(printf, 1, 2))) static void skip(const char *fmt, ...)
{
	va_list ap;

	printf("SKIP: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	exit(EXIT_SKIP);
}

__attribute__((noreturn, format(printf, 1, 2))) static void harness_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "harness error: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(EXIT_HARNESS);
}

static int vcpu_get_msrs_ioctl(struct kvm_msrs *m)
{
	return ioctl(vcpu_fd, KVM_GET_MSRS, m);
}

static int vcpu_set_msrs_ioctl(struct kvm_msrs *m)
{
	return ioctl(vcpu_fd, KVM_SET_MSRS, m);
}

static __attribute__((unused)) int set_cpuid(struct kvm_cpuid2 *c)
{
	return ioctl(vcpu_fd, KVM_SET_CPUID2, c);
}

static __attribute__((unused)) int set_filter_ioctl(struct kvm_pmu_event_filter *f)
{
	return ioctl(vm_fd, KVM_SET_PMU_EVENT_FILTER, f);
}

static void host_cpuid(unsigned leaf, unsigned *a, unsigned *b, unsigned *c, unsigned *d)
{
	__cpuid_count(leaf, 0, *a, *b, *c, *d);
}
`;

/** After the shared code: the VM itself, save/restore, the run loop and main. */
export const REPRO_MAIN_C = String.raw`
/* ---- the VM ------------------------------------------------------------------------------- */

static void create_vm(void)
{
	struct kvm_userspace_memory_region r = { .slot = 0, .guest_phys_addr = GUEST_BASE, .memory_size = GUEST_SIZE,
						  .userspace_addr = (uint64_t)(uintptr_t)mem };

	vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm_fd < 0)
		harness_error("KVM_CREATE_VM: %s", strerror(errno));
	if (ioctl(vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul) || ioctl(vm_fd, KVM_CREATE_IRQCHIP, 0) ||
	    ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r))
		harness_error("VM set-up: %s", strerror(errno));
	if (current_filter && set_filter_ioctl(current_filter))
		harness_error("KVM_SET_PMU_EVENT_FILTER again: %s", strerror(errno));
	vcpu_fd = ioctl(vm_fd, KVM_CREATE_VCPU, 0);
	if (vcpu_fd < 0)
		harness_error("KVM_CREATE_VCPU: %s", strerror(errno));
	run_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd, 0);
	if (run == MAP_FAILED)
		harness_error("mmap kvm_run: %s", strerror(errno));
	if (apply_model(current_model))
		divergence("the VMM's set-up (KVM_SET_CPUID2, then PERF_CAPABILITIES)", "a refusal, KVM's ABI accepts it");
}

static void start_vcpu(void)
{
	struct kvm_sregs s;
	struct kvm_regs r = { .rip = GUEST_BASE + OFF_CODE, .rsp = GUEST_BASE + OFF_STACK, .rflags = GUEST_RFLAGS };

	if (ioctl(vcpu_fd, KVM_GET_SREGS, &s))
		harness_error("KVM_GET_SREGS: %s", strerror(errno));
	fill_sregs(&s);
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &s) || ioctl(vcpu_fd, KVM_SET_REGS, &r))
		harness_error("KVM_SET_SREGS/REGS: %s", strerror(errno));
	if (set_msr(MSR_STAR, STAR_VALUE) != 1 || set_msr(MSR_LSTAR, GUEST_BASE + OFF_STUBS + STUB_LANDING) != 1 ||
	    set_msr(MSR_SYSCALL_MASK, 0) != 1)
		harness_error("KVM_SET_MSRS STAR/LSTAR/SFMASK");
}

static void destroy_vm(void)
{
	munmap(run, run_size);
	close(vcpu_fd);
	close(vm_fd);
}

/* A VM whose vCPU has the current guest model (the MSR index list check's). */
static __attribute__((unused)) void vm_open(void)
{
	create_vm();
}

static __attribute__((unused)) void vm_close(void)
{
	destroy_vm();
}

/* Save everything a VMM saves, destroy the VM, restore into a fresh one whose thread runs on pCPU @k. */
static __attribute__((unused)) void save_restore(int k)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;
	struct kvm_debugregs dbg;
	struct kvm_xcrs xcrs;
	int xsz = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	struct kvm_xsave *xs;

	if (xsz < (int)sizeof(struct kvm_xsave))
		xsz = sizeof(struct kvm_xsave);
	xs = calloc(1, xsz);
	/* Complete the pending OUT before reading state, as KVM documents. */
	run->immediate_exit = 1;
	if (ioctl(vcpu_fd, KVM_RUN, 0) == 0 || errno != EINTR)
		harness_error("KVM_RUN with immediate_exit: %s", strerror(errno));
	run->immediate_exit = 0;
	save_msrs();
	if (ioctl(vcpu_fd, KVM_GET_REGS, &regs) || ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) ||
	    ioctl(vcpu_fd, KVM_GET_LAPIC, &lapic) || ioctl(vcpu_fd, KVM_GET_VCPU_EVENTS, &events) ||
	    ioctl(vcpu_fd, KVM_GET_MP_STATE, &mp) || ioctl(vcpu_fd, KVM_GET_DEBUGREGS, &dbg) ||
	    ioctl(vcpu_fd, KVM_GET_XCRS, &xcrs) ||
	    ioctl(vcpu_fd, xsz > (int)sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, xs))
		harness_error("save: %s", strerror(errno));
	destroy_vm();
	create_vm(); /* the same memory; the guest model and the filter again */
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs))
		harness_error("restore: KVM_SET_SREGS: %s", strerror(errno));
	restore_msrs();
	if (ioctl(vcpu_fd, KVM_SET_XCRS, &xcrs) || ioctl(vcpu_fd, KVM_SET_XSAVE, xs) ||
	    ioctl(vcpu_fd, KVM_SET_VCPU_EVENTS, &events) || ioctl(vcpu_fd, KVM_SET_MP_STATE, &mp) ||
	    ioctl(vcpu_fd, KVM_SET_DEBUGREGS, &dbg) || ioctl(vcpu_fd, KVM_SET_REGS, &regs) ||
	    ioctl(vcpu_fd, KVM_SET_LAPIC, &lapic))
		harness_error("restore: %s", strerror(errno));
	free(xs);
	host_migrate(k);
}

__attribute__((noreturn)) static void stuck(const char *why)
{
	struct kvm_regs r;

	fprintf(stderr, "harness error: %s (exit reason %u)\n", why, run->exit_reason);
	if (ioctl(vcpu_fd, KVM_GET_REGS, &r) == 0)
		fprintf(stderr, "  rip 0x%llx rsp 0x%llx r14 0x%llx\n", (unsigned long long)r.rip,
			(unsigned long long)r.rsp, (unsigned long long)r.r14);
	exit(EXIT_HARNESS);
}

/* Runs the guest to its end, checking at each sync point and doing the host's steps there. */
static void run_guest(void)
{
	for (;;) {
		uint32_t v;

		if (ioctl(vcpu_fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue; /* a timer signal kicked the vCPU out: go back in */
			harness_error("KVM_RUN: %s", strerror(errno));
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			v = 0;
			memcpy(&v, (uint8_t *)run + run->io.data_offset, run->io.size);
			if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == PORT_SYNC) {
				irq_timer_stop();
				check_due(v);
				host_step(v);
				continue;
			}
			if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == PORT_DONE) {
				irq_timer_stop();
				check_due(NR_SYNCS + 1);
				return;
			}
			if (run->io.port == PORT_FATAL) {
				fprintf(stderr, "the guest took exception vector %u, which the program does not expect\n", v);
				stuck("unexpected guest exception");
			}
			stuck("unexpected port I/O");
		case KVM_EXIT_SHUTDOWN:
			stuck("triple fault");
		case KVM_EXIT_FAIL_ENTRY:
			fprintf(stderr, "hardware_entry_failure_reason 0x%llx\n",
				(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			stuck("VM entry failed");
		case KVM_EXIT_INTERNAL_ERROR:
			fprintf(stderr, "suberror %u\n", run->internal.suberror);
			stuck("KVM internal error");
		default:
			stuck("unexpected exit");
		}
	}
}

static void run_program(void)
{
	host_migrate(0); /* vCPU 0's thread starts on the program's pCPU 0 */
	build_guest_image();
	next_check = 0;
	nr_host_events = 0;
	current_model = &guest;
	free(current_filter);
	current_filter = NULL;
	create_vm();
	start_vcpu();
	vmm_prefix();
	run_guest();
	after_run();
	destroy_vm();
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	mem = mmap(NULL, GUEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		harness_error("mmap guest memory: %s", strerror(errno));
	if (argc > 1 && !strcmp(argv[1], "--dump-guest")) {
		/* The program's code, for: objdump -D -b binary -m i386:x86-64 --adjust-vma=<GUEST_BASE + OFF_CODE> */
		build_guest_image();
		fwrite(mem + OFF_CODE, 1, CODE_END - OFF_CODE, stdout);
		return 0;
	}
	printf("%s\n", TITLE);
	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0)
		skip("cannot open /dev/kvm: %s", strerror(errno));
	if (ioctl(kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		skip("KVM API version is not %d", KVM_API_VERSION);
	check_environment();
	print_vpmu();
	reproduce();
	printf("no divergence: every observation matches %s\n", AGAINST);
	return 0;
}
`;
