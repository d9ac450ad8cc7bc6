/**
 * The KVM selftest harness (tools/testing/selftests/kvm/x86/, x86_64/ before 6.14): the selftest
 * library builds the VM and the vCPU, sets CPUID and MSRs, runs the vCPU and saves/restores it;
 * the guest program is the same bytes at the same address as the standalone reproducer's, with
 * the same handlers, because exact counts need every retired instruction known (a ucall or the
 * library's exception path would run compiler-generated code inside the counting windows). It uses
 * only library names common to 6.12 and the newest trees, and `<stdint.h>` types. Exit codes are
 * kselftest's: 0 pass, KSFT_SKIP (4) the host lacks what the program needs, a TEST_ASSERT/TEST_FAIL
 * failure (254) the divergence (or a harness error, which says so).
 */

export const SELFTEST_INCLUDES = `#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/perf_event.h>

#include "kvm_util.h"
#include "processor.h"`;

export const SELFTEST_PRELUDE_C = String.raw`
/* ---- verdicts, kselftest style --------------------------------------------------------------- */

static int kvm_fd = -1;
static struct kvm_vm *vm;
static struct kvm_vcpu *vcpu;

__attribute__((noreturn, format(printf, 2, 3))) static void divergence(const char *what, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	TEST_FAIL("first divergence at %s: KVM shows %s", what, buf);
	exit(KSFT_FAIL); /* not reached */
}

__attribute__((noreturn, format(printf, 1, 2))) static void skip(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	print_skip("%s", buf);
	exit(KSFT_SKIP);
}

__attribute__((noreturn, format(printf, 1, 2))) static void harness_error(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	TEST_FAIL("harness error (not a verdict): %s", buf);
	exit(KSFT_FAIL); /* not reached */
}

static int vcpu_get_msrs_ioctl(struct kvm_msrs *m)
{
	return __vcpu_ioctl(vcpu, KVM_GET_MSRS, m);
}

static int vcpu_set_msrs_ioctl(struct kvm_msrs *m)
{
	return __vcpu_ioctl(vcpu, KVM_SET_MSRS, m);
}

static __attribute__((unused)) int set_cpuid(struct kvm_cpuid2 *c)
{
	return __vcpu_ioctl(vcpu, KVM_SET_CPUID2, c);
}

static __attribute__((unused)) int set_filter_ioctl(struct kvm_pmu_event_filter *f)
{
	return __vm_ioctl(vm, KVM_SET_PMU_EVENT_FILTER, f);
}

static void host_cpuid(unsigned leaf, unsigned *a, unsigned *b, unsigned *c, unsigned *d)
{
	uint32_t x[4];

	__cpuid(leaf, 0, &x[0], &x[1], &x[2], &x[3]);
	*a = x[0];
	*b = x[1];
	*c = x[2];
	*d = x[3];
}
`;

export const SELFTEST_MAIN_C = String.raw`
/* ---- the VM, through the selftest library ----------------------------------------------------- */

/* The library wants a guest entry point; the program starts at GUEST_BASE + OFF_CODE instead. */
static void guest_code_unused(void)
{
}

/* One vCPU VM with the in-kernel irqchip, plus the guest region as memslot 1. */
static void create_vm(void)
{
	vm = vm_create_with_one_vcpu(&vcpu, guest_code_unused);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, GUEST_BASE, 1, GUEST_SIZE / getpagesize(), 0);
	mem = addr_gpa2hva(vm, GUEST_BASE);
}

/* A VM whose vCPU has the current guest model (the MSR index list check's). */
static __attribute__((unused)) void vm_open(void)
{
	create_vm();
	if (apply_model(current_model))
		divergence("the VMM's set-up (KVM_SET_CPUID2, then PERF_CAPABILITIES)", "a refusal, KVM's ABI accepts it");
}

static __attribute__((unused)) void vm_close(void)
{
	kvm_vm_free(vm);
}

static void start_vcpu(void)
{
	struct kvm_sregs s;
	struct kvm_regs r;

	if (apply_model(current_model))
		divergence("the VMM's set-up (KVM_SET_CPUID2, then PERF_CAPABILITIES)", "a refusal, KVM's ABI accepts it");
	vcpu_sregs_get(vcpu, &s);
	fill_sregs(&s);
	vcpu_sregs_set(vcpu, &s);
	memset(&r, 0, sizeof(r));
	r.rip = GUEST_BASE + OFF_CODE;
	r.rsp = GUEST_BASE + OFF_STACK;
	r.rflags = GUEST_RFLAGS;
	vcpu_regs_set(vcpu, &r);
	TEST_ASSERT(_vcpu_set_msr(vcpu, MSR_STAR, STAR_VALUE) == 1 &&
		    _vcpu_set_msr(vcpu, MSR_LSTAR, GUEST_BASE + OFF_STUBS + STUB_LANDING) == 1 &&
		    _vcpu_set_msr(vcpu, MSR_SYSCALL_MASK, 0) == 1,
		    "KVM_SET_MSRS STAR/LSTAR/SFMASK");
}

/*
 * Save the vCPU as a VMM does, destroy the VM, restore into a fresh one whose thread runs on
 * pCPU @k: the library's state (which takes every MSR KVM_GET_MSR_INDEX_LIST lists), the PMU MSRs
 * again in QEMU's order, and the LAPIC (LVTPC lives there, outside the library's state).
 */
static __attribute__((unused)) void save_restore(int k)
{
	struct kvm_x86_state *state;
	struct kvm_lapic_state lapic;

	state = vcpu_save_state(vcpu); /* completes the pending OUT first */
	save_msrs();
	vcpu_ioctl(vcpu, KVM_GET_LAPIC, &lapic);
	kvm_vm_release(vm);
	vcpu = vm_recreate_with_one_vcpu(vm);
	if (apply_model(current_model))
		divergence("restore: KVM_SET_CPUID2, then PERF_CAPABILITIES", "a refusal, KVM's ABI accepts it");
	if (current_filter)
		TEST_ASSERT(set_filter_ioctl(current_filter) == 0, "KVM_SET_PMU_EVENT_FILTER again");
	vcpu_load_state(vcpu, state);
	restore_msrs();
	vcpu_ioctl(vcpu, KVM_SET_LAPIC, &lapic);
	kvm_x86_state_cleanup(state);
	host_migrate(k);
}

/* Runs the guest to its end, checking at each sync point and doing the host's steps there. */
static void run_guest(void)
{
	for (;;) {
		struct kvm_run *run;
		uint32_t v = 0;

		vcpu_run(vcpu); /* a timer signal's EINTR is retried inside */
		run = vcpu->run;
		TEST_ASSERT(run->exit_reason == KVM_EXIT_IO, "unexpected exit reason %u (rip 0x%llx)", run->exit_reason,
			    (unsigned long long)vcpu->run->s.regs.regs.rip);
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
		TEST_ASSERT(run->io.port != PORT_FATAL, "the guest took exception vector %u, which the program does not expect", v);
		TEST_FAIL("unexpected port I/O 0x%x", run->io.port);
	}
}

static void run_program(void)
{
	host_migrate(0); /* vCPU 0's thread starts on the program's pCPU 0 */
	next_check = 0;
	nr_host_events = 0;
	current_model = &guest;
	free(current_filter);
	current_filter = NULL;
	create_vm();
	build_guest_image();
	start_vcpu();
	vmm_prefix();
	run_guest();
	after_run();
	kvm_vm_free(vm);
}

int main(int argc, char *argv[])
{
	setvbuf(stdout, NULL, _IONBF, 0);
	TEST_REQUIRE(host_cpu_is_intel);
	TEST_REQUIRE(kvm_is_pmu_enabled());
	printf("%s\n", TITLE);
	kvm_fd = open_kvm_dev_path_or_exit();
	check_environment();
	print_vpmu();
	reproduce();
	printf("no divergence: every observation matches %s\n", AGAINST);
	return 0;
}
`;
