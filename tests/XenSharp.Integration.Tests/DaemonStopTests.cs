namespace XenSharp.Integration.Tests;

/// <summary>SIGTERM to xld shuts its domains down cleanly (the guest sees the power button) before it exits.</summary>
public sealed class DaemonStopTests
{
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int sig);

    [SkippableFact]
    public void SigtermAsksGuestsToPowerOffAndExitsCleanly()
    {
        Skip.IfNot(File.Exists(Paths.HvmGuest), $"{Paths.HvmGuest} is not built (run make -C guests)");
        using var xld = new XldFixture();
        var cfg = Path.Combine(xld.Directory, "stop.cfg");
        File.WriteAllText(cfg, $"name=\"stop\"\ntype=\"hvm\"\nkernel=\"{Paths.HvmGuest}\"\nmemory=16\n");
        Assert.Equal(0, xld.Xl("create", cfg).ExitCode);
        XldFixture.WaitUntil(() => xld.ConsoleLog("stop").Contains("ready"), TimeSpan.FromSeconds(60), () => xld.ConsoleLog("stop"));
        Assert.Equal(0, Kill(xld.XldProcess.Id, 15));
        Assert.True(xld.XldProcess.WaitForExit(30000), "xld did not exit after SIGTERM");
        Assert.Equal(0, xld.XldProcess.ExitCode);
        Assert.Contains("powering off", xld.ConsoleLog("stop"));
        Assert.False(File.Exists(xld.SocketPath), "the control socket is removed on exit");
        var log = File.ReadAllText(Path.Combine(xld.LogDirectory, "xld.log"));
        Assert.Contains("reason poweroff", log);
        Assert.Contains("stopped", log);
    }
}
