using XenSharp.Dom0.Net;

namespace XenSharp.Dom0.Tests.Net;

public sealed class VirtualSwitchTests
{
    private sealed class Sink(string name, uint? dom) : SwitchPort(name, dom)
    {
        public readonly List<byte[]> Got = [];
        public override void Deliver(byte[] frame) { lock (Got) Got.Add(frame); }
    }

    private static byte[] Mac(byte last) => [0x00, 0x16, 0x3e, 0, 0, last];
    private static byte[] F(byte[] dst, byte[] src) => [.. dst, .. src, 0x08, 0x00, 1, 2, 3];

    [Fact]
    public void LearnsFloodsAndAges()
    {
        long now = 0;
        var sw = new VirtualSwitch("t") { Clock = () => now, AgeingTime = TimeSpan.FromSeconds(10) };
        var a = new Sink("a", 1); var b = new Sink("b", 2); var c = new Sink("c", 3);
        sw.Attach(a); sw.Attach(b); sw.Attach(c);
        // Unknown unicast floods to all but the sender.
        sw.Forward(a, F(Mac(2), Mac(1)));
        Assert.Empty(a.Got); Assert.Single(b.Got); Assert.Single(c.Got);
        Assert.Same(a, sw.Lookup(Mac(1)));
        // b answers: unicast straight to a.
        sw.Forward(b, F(Mac(1), Mac(2)));
        Assert.Single(a.Got); Assert.Single(c.Got);
        // Now a → b is known.
        sw.Forward(a, F(Mac(2), Mac(1)));
        Assert.Equal(2, b.Got.Count); Assert.Single(c.Got);
        // Multicast floods.
        sw.Forward(a, F([0x01, 0x00, 0x5e, 0, 0, 1], Mac(1)));
        Assert.Equal(3, b.Got.Count); Assert.Equal(2, c.Got.Count);
        // b's entry ages out: flooding again.
        now += 11_000;
        Assert.Null(sw.Lookup(Mac(2)));
        sw.Forward(a, F(Mac(2), Mac(1)));
        Assert.Equal(3, c.Got.Count);
        // A station moves: relearned on the new port.
        sw.Forward(c, F(Mac(9), Mac(2)));
        Assert.Same(c, sw.Lookup(Mac(2)));
        // Detaching purges its entries; a multicast source is never learned; runts are dropped.
        sw.Detach(c);
        Assert.Null(sw.Lookup(Mac(2)));
        sw.Forward(a, F(Mac(1), [0x01, 0, 0, 0, 0, 7]));
        Assert.Null(sw.Lookup([0x01, 0, 0, 0, 0, 7]));
        sw.Forward(a, new byte[5]);
        Assert.True(sw.Dropped >= 1);
    }

    [Fact]
    public void IsolationKeepsDomainsApartButNotFromUplinks()
    {
        var sw = new VirtualSwitch("iso") { IsolateDomains = true };
        var a = new Sink("a", 1); var a2 = new Sink("a2", 1); var b = new Sink("b", 2); var up = new Sink("up", null);
        sw.Attach(a); sw.Attach(a2); sw.Attach(b); sw.Attach(up);
        sw.Forward(a, F([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], Mac(1)));
        Assert.Single(a2.Got); Assert.Empty(b.Got); Assert.Single(up.Got);
        sw.Forward(b, F(Mac(1), Mac(2))); // known unicast to another domain: dropped
        Assert.DoesNotContain(a.Got, x => x[11] == 2);
        sw.Forward(up, F(Mac(2), Mac(0x50)));
        Assert.Single(b.Got);
        Assert.Throws<InvalidOperationException>(() => sw.Attach(a));
    }
}
