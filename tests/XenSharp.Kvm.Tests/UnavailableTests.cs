using XenSharp.Accel;
using XenSharp.Kvm;

namespace XenSharp.Kvm.Tests;

/// <summary>What a user sees where KVM cannot be used. These run on every machine.</summary>
public sealed class UnavailableTests
{
    [SkippableFact]
    public void Constructing_the_accelerator_without_usable_kvm_explains_the_fix()
    {
        var (usable, reason) = KvmAccelerator.Probe();
        Skip.If(usable, $"KVM is usable on this machine ({reason})");
        AcceleratorUnavailableException? e = null;
        try
        {
            using var accelerator = new KvmAccelerator();
        }
        catch (AcceleratorUnavailableException x)
        {
            e = x;
        }
        Skip.If(e is null, $"/dev/kvm opens here; KVM is unusable for another reason: {reason}");
        Assert.Contains("/dev/kvm", e!.Message);
        Assert.Matches("load kvm_intel|run as root|kvm group|run on a host", e.Message);
        Assert.Equal(e.Message, reason);
    }

    [Fact]
    public void A_missing_device_says_it_is_missing_and_what_to_load()
    {
        var e = Assert.Throws<AcceleratorUnavailableException>(() => new KvmAccelerator("/nonexistent/kvm"));
        Assert.StartsWith("/nonexistent/kvm is missing", e.Message);
        Assert.Contains("kvm_intel", e.Message);
        Assert.Contains("hardware virtualization", e.Message);
        var (usable, reason) = KvmAccelerator.Probe("/nonexistent/kvm");
        Assert.False(usable);
        Assert.Equal(e.Message, reason);
    }

    [Fact]
    public void A_device_that_is_not_kvm_is_named_with_the_failed_ioctl()
    {
        var e = Assert.Throws<AcceleratorUnavailableException>(() => new KvmSystem("/dev/null"));
        Assert.Equal("/dev/null is not a KVM device: KVM_GET_API_VERSION failed with ENOTTY (Inappropriate ioctl for device)", e.Message);
    }

    [Theory]
    [InlineData(Posix.ENOENT, "is missing: load kvm_intel or kvm_amd")]
    [InlineData(Posix.ENODEV, "no KVM back end answers (ENODEV)")]
    [InlineData(Posix.EACCES, "permission denied opening /dev/kvm: run as root or add the user to the kvm group")]
    [InlineData(Posix.EPERM, "permission denied")]
    [InlineData(KvmErrno.EBUSY, "cannot open /dev/kvm: EBUSY (Device or resource busy)")]
    public void Open_failures_map_to_advice(int errno, string expected)
    {
        Assert.Contains(expected, KvmSystem.OpenFailureMessage("/dev/kvm", errno));
    }

    [Fact]
    public void Ioctl_failures_name_the_ioctl_its_target_and_the_errno()
    {
        var e = new KvmException("KVM_SET_USER_MEMORY_REGION", "slot 1", KvmErrno.EINVAL);
        Assert.Equal("KVM_SET_USER_MEMORY_REGION slot 1 failed: EINVAL (Invalid argument)", e.Message);
        Assert.Equal(KvmErrno.EINVAL, e.Errno);
        Assert.Equal("KVM_SET_USER_MEMORY_REGION", e.Ioctl);
    }

    [Fact]
    public void The_kick_signal_is_a_free_realtime_signal_above_the_runtimes()
    {
        int sig = KickSignal.Number;
        int min = KvmSys.CurrentSigRtMin();
        Assert.InRange(sig, min + KickSignal.PreferredOffset, KvmSys.CurrentSigRtMax());
        Assert.Equal(sig, KickSignal.Number); // installed once
        // Our handler is in place: the process now catches it (SigCgt in /proc/self/status).
        string caught = File.ReadLines("/proc/self/status").First(l => l.StartsWith("SigCgt:"))[7..].Trim();
        ulong mask = Convert.ToUInt64(caught, 16);
        Assert.True((mask & (1UL << (sig - 1))) != 0, $"signal {sig} is not caught: SigCgt {caught}");
        // Delivering it to ourselves is harmless (the handler is getpid).
        Assert.Equal(0, Posix.tgkill(Posix.getpid(), Posix.gettid(), sig));
    }
}
