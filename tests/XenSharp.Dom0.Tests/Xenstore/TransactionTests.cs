using XenSharp.Dom0.Xenstore;

namespace XenSharp.Dom0.Tests.Xenstore;

public sealed class TransactionTests
{
    private readonly XenstoreStore _s = new();

    [Fact]
    public void WritesAreInvisibleOutsideUntilCommit()
    {
        var a = Wire.Dom0(_s);
        var b = Wire.Dom0(_s);
        a.Write("/t/x", "old");
        uint tx = a.Start();
        Assert.NotEqual(0u, tx);
        Assert.Equal("OK", a.Write("/t/x", "new", tx));
        Assert.Equal("new", a.Read("/t/x", tx));
        Assert.Equal("old", b.Read("/t/x"));
        Assert.Equal("old", a.Read("/t/x"));
        Assert.Equal("OK", a.End(tx));
        Assert.Equal("new", b.Read("/t/x"));
    }

    [Fact]
    public void AbortDiscards()
    {
        var a = Wire.Dom0(_s);
        uint tx = a.Start();
        a.Write("/t/y", "1", tx);
        a.Rm("/tool", tx);
        Assert.Equal("OK", a.End(tx, commit: false));
        Assert.Equal("ENOENT", a.Read("/t/y"));
        Assert.Equal("", a.Read("/tool"));
        Assert.Equal("ENOENT", a.End(tx));
    }

    [Fact]
    public void ConcurrentWriteToAReadNodeConflicts()
    {
        var a = Wire.Dom0(_s);
        var b = Wire.Dom0(_s);
        a.Write("/c/x", "1");
        uint tx = a.Start();
        Assert.Equal("1", a.Read("/c/x", tx));
        a.Write("/c/other", "2", tx);
        b.Write("/c/x", "changed");
        Assert.Equal("EAGAIN", a.End(tx));
        Assert.Equal("ENOENT", a.Read("/c/other"));
        // The transaction is gone after EAGAIN.
        Assert.Equal("ENOENT", a.Read("/c/x", tx));
    }

    [Fact]
    public void UnrelatedConcurrentWriteDoesNotConflict()
    {
        var a = Wire.Dom0(_s);
        var b = Wire.Dom0(_s);
        a.Write("/c/x", "1");
        a.Write("/d/y", "1");
        uint tx = a.Start();
        a.Write("/c/x", "2", tx);
        b.Write("/d/y", "2");
        Assert.Equal("OK", a.End(tx));
        Assert.Equal("2", b.Read("/c/x"));
    }

    [Fact]
    public void CreationOfANodeSomeoneElseCreatedConflicts()
    {
        var a = Wire.Dom0(_s);
        var b = Wire.Dom0(_s);
        uint tx = a.Start();
        Assert.Equal("ENOENT", a.Read("/n/x", tx));
        b.Write("/n/x", "b");
        Assert.Equal("EAGAIN", a.End(tx));
    }

    [Fact]
    public void NestedCreationInsideTransaction()
    {
        var a = Wire.Dom0(_s);
        uint tx = a.Start();
        Assert.Equal("OK", a.Write("/deep/a/b/c", "v", tx));
        Assert.Equal("a\0", a.Dir("/deep", tx));
        Assert.Equal("ENOENT", a.Dir("/deep"));
        Assert.Equal("OK", a.Rm("/deep/a/b", tx));
        Assert.Equal("OK", a.Write("/deep/a/b2", "w", tx));
        Assert.Equal("OK", a.End(tx));
        Assert.Equal("b2\0", a.Dir("/deep/a"));
        Assert.Equal("w", a.Read("/deep/a/b2"));
        Assert.Equal("ENOENT", a.Read("/deep/a/b"));
    }

    [Fact]
    public void BadTransactionIdIsEnoent()
    {
        var a = Wire.Dom0(_s);
        Assert.Equal("ENOENT", a.Read("/tool", 4242));
        Assert.Equal("ENOENT", a.Write("/x", "1", 4242));
        // WATCH ignores tx_id.
        Assert.Equal("OK", a.Watch("/x", "t"));
    }

    [Fact]
    public void TransactionsArePerConnection()
    {
        var a = Wire.Dom0(_s);
        var b = Wire.Dom0(_s);
        uint tx = a.Start();
        Assert.Equal("ENOENT", b.Read("/tool", tx));
    }

    [Fact]
    public void NestedStartIsEbusyAndBadEndArgumentIsEinval()
    {
        var a = Wire.Dom0(_s);
        uint tx = a.Start();
        Assert.Equal("EBUSY", a.Req(XsMessageType.TransactionStart, tx, ""));
        Assert.Equal("EINVAL", a.Req(XsMessageType.TransactionEnd, tx, "X"));
        Assert.Equal("ENOENT", a.Req(XsMessageType.TransactionEnd, 0, "T"));
        Assert.Equal("ENOENT", a.End(0));
    }

    [Fact]
    public void WatchesFireOnlyAfterCommit()
    {
        var a = Wire.Dom0(_s);
        var watcher = Wire.Dom0(_s);
        watcher.Watch("/w", "tok");
        watcher.Events.Clear();
        uint tx = a.Start();
        a.Write("/w/x", "1", tx);
        watcher.DrainEvents();
        Assert.Empty(watcher.Events);
        a.End(tx);
        watcher.DrainEvents();
        Assert.Contains(("/w/x", "tok"), watcher.Events);
    }

    [Fact]
    public void AbortedTransactionFiresNothing()
    {
        var a = Wire.Dom0(_s);
        var watcher = Wire.Dom0(_s);
        watcher.Watch("/w", "tok");
        watcher.Events.Clear();
        uint tx = a.Start();
        a.Write("/w/x", "1", tx);
        a.End(tx, commit: false);
        watcher.DrainEvents();
        Assert.Empty(watcher.Events);
    }

    [Fact]
    public void ResetWatchesDropsTransactions()
    {
        var a = Wire.Dom0(_s);
        uint tx = a.Start();
        a.Watch("/x", "t");
        Assert.Equal("OK\0", a.Req(XsMessageType.ResetWatches, 0));
        Assert.Equal("ENOENT", a.End(tx));
        Assert.Equal("ENOENT", a.Unwatch("/x", "t"));
    }

    [Fact]
    public void ClientTransactionRetriesOnConflict()
    {
        using var c = new XenstoreClient(_s);
        using var other = new XenstoreClient(_s);
        c.Write("/counter", "0");
        int attempts = 0;
        c.Transaction(tx =>
        {
            int v = int.Parse(c.Read("/counter", tx));
            if (attempts++ == 0) other.Write("/counter", "10");
            c.Write("/counter", (v + 1).ToString(), tx);
        });
        Assert.Equal(2, attempts);
        Assert.Equal("11", c.Read("/counter"));
    }

    [Fact]
    public async Task ConcurrentTransactionalIncrementsAreNotLost()
    {
        using (var init = new XenstoreClient(_s)) init.Write("/counter", "0");
        var workers = Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            using var c = new XenstoreClient(_s);
            for (int i = 0; i < 50; i++)
                c.Transaction(tx => c.Write("/counter", (int.Parse(c.Read("/counter", tx)) + 1).ToString(), tx));
        })).ToArray();
        await Task.WhenAll(workers);
        using var check = new XenstoreClient(_s);
        Assert.Equal("200", check.Read("/counter"));
    }
}
