namespace XenSharp.Dom0.Tests.Block;

/// <summary>A qcow2 test class: a scratch workspace per test, removed afterwards.</summary>
public abstract class Qcow2TestBase : IDisposable
{
    private protected Qcow2Workspace Ws { get; } = new();

    public virtual void Dispose()
    {
        Ws.Dispose();
        GC.SuppressFinalize(this);
    }
}
