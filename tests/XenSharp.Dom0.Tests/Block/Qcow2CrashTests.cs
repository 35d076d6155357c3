using System.Security.Cryptography;
using XenSharp.Dom0.Block.Qcow2;
using static XenSharp.Dom0.Tests.Block.Qcow2Workspace;

namespace XenSharp.Dom0.Tests.Block;

/// <summary>
/// Power cuts at every point of our metadata updates: the file as it was at the last fdatasync plus some of the
/// writes issued since (none, all, all but the first, only the last: the disk may reorder them). Every such file
/// must pass <c>qemu-img check</c> with at worst leaks, and read back only data some guest write or the backing
/// file put there: never a pointer to an unwritten cluster.
/// </summary>
public sealed class Qcow2CrashTests : Qcow2TestBase
{

    /// <summary>Replays our writes and syncs; just before each sync, records the files a power cut could leave.</summary>
    private sealed class PowerCut(byte[] initial)
    {
        private byte[] _durable = initial;
        private readonly List<(long Offset, byte[] Data)> _pending = [];
        public readonly List<byte[]> States = [];

        public void Write(long offset, ReadOnlySpan<byte> data) => _pending.Add((offset, data.ToArray()));

        public void Sync()
        {
            if (_pending.Count > 0)
            {
                States.Add(Apply(_durable, []));                                  // every unsynced write lost
                States.Add(Apply(_durable, _pending.Skip(1)));                    // the oldest lost, the rest reordered ahead
                States.Add(Apply(_durable, _pending.TakeLast(1)));                // only the newest made it
                States.Add(Apply(_durable, _pending.Where((_, i) => i % 2 == 1))); // every other one
            }
            _durable = Apply(_durable, _pending);
            _pending.Clear();
        }

        public void End() => States.Add(Apply(_durable, _pending));

        private static byte[] Apply(byte[] file, IEnumerable<(long Offset, byte[] Data)> writes)
        {
            var list = writes.ToList();
            long end = Math.Max(file.Length, list.Count == 0 ? 0 : list.Max(w => w.Offset + w.Data.Length));
            var r = new byte[end];
            file.CopyTo(r, 0);
            foreach (var (o, d) in list) d.CopyTo(r, o);
            return r;
        }
    }

    [SkippableTheory]
    [InlineData(4096, 16, true)]    // copy-on-write from a backing file and from clusters a snapshot shares
    [InlineData(512, 64, false)]    // new refcount blocks and a moved refcount table
    public void EveryPowerCutLeavesAtWorstLeaks(int cluster, int refcountBits, bool backingAndSnapshot)
    {
        QemuTools.SkipIfMissing();
        const int Size = 1 << 20, Writes = 10;
        var fill = new byte[Size];
        Array.Fill(fill, (byte)0x5A);
        Ws.WriteRaw("base.raw", fill);
        string img = backingAndSnapshot
            ? Ws.Create("c.qcow2", "1.1", cluster, "", $"refcount_bits={refcountBits}", backing: "base.raw", backingFormat: "raw")
            : Ws.Create("c.qcow2", "1.1", cluster, "1M", $"refcount_bits={refcountBits}");
        if (backingAndSnapshot)
        {
            Io(img, "write -P 0x11 0 64k");
            QemuTools.Run("qemu-img", "snapshot", "-c", "s1", img);
        }
        var before = QemuTools.GuestView(img);
        var cut = new PowerCut(File.ReadAllBytes(img));
        // Each guest byte may read back its old value or the pattern (0x80 + n) of a write n that covered it.
        var covered = new ushort[Size];
        using (var q = Qcow2Image.Open(img, readOnly: false, domid: 1))
        {
            q.File.Written = cut.Write;
            q.File.Synced = cut.Sync;
            var rng = new Random(7);
            for (int n = 0; n < Writes; n++)
            {
                long at = rng.Next(0, Size / 512 - 64) * 512L;
                var data = new byte[rng.Next(1, 64) * 512];
                Array.Fill(data, (byte)(0x80 + n));
                q.Write(at, data);
                for (int j = 0; j < data.Length; j++) covered[at + j] |= (ushort)(1 << n);
            }
        }
        cut.End();
        Assert.True(cut.States.Count > 40, $"only {cut.States.Count} crash states");

        var seen = new HashSet<string>();
        string state = Ws.PathOf("state.qcow2");
        foreach (var s in cut.States)
        {
            if (!seen.Add(Convert.ToHexString(SHA256.HashData(s)))) continue;
            File.WriteAllBytes(state, s);
            var (ok, output) = QemuTools.TryRun("qemu-img", ["check", state]);
            Assert.True(ok || (output.Contains("leaked clusters") && !output.Contains("ERROR")), $"crash state {seen.Count}: {output}");
            var view = QemuTools.GuestView(state);
            for (int i = 0; i < view.Length; i++)
            {
                int n = view[i] - 0x80;
                Assert.True(view[i] == before[i] || (n is >= 0 and < Writes && (covered[i] & (1 << n)) != 0),
                    $"crash state {seen.Count}: guest byte {i} reads 0x{view[i]:x2}");
            }
        }
    }
}
