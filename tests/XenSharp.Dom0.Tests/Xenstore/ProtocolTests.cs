using System.Buffers.Binary;
using XenSharp.Dom0.Xenstore;

namespace XenSharp.Dom0.Tests.Xenstore;

public sealed class ProtocolTests
{
    private readonly XenstoreStore _s = new();

    [Fact]
    public void OversizedPayloadBreaksTheConnection()
    {
        var w = Wire.Dom0(_s);
        var hdr = new byte[XsHeader.Size];
        new XsHeader(XsMessageType.Write, 1, 0, XsWire.PayloadMax + 1).WriteTo(hdr);
        Assert.False(w.Conn.Feed(hdr));
        Assert.True(w.Conn.IsBroken);
        Assert.Equal(XsWire.ErrorProto, w.Conn.BrokenReason);
        Assert.False(w.Conn.Feed(XsWire.Build(XsMessageType.Read, 2, 0, XsWire.Strings("/"))));
        Assert.False(w.Conn.TryDequeue(out _));
    }

    [Fact]
    public void MaximumPayloadIsAccepted()
    {
        var w = Wire.Dom0(_s);
        var payload = new byte[XsWire.PayloadMax];
        XsWire.Strings("/max").CopyTo(payload, 0);
        var (h, _) = w.Send(XsMessageType.Write, payload);
        Assert.Equal(XsMessageType.Write, h.Type);
        Assert.Equal(XsWire.PayloadMax - 5, w.Send(XsMessageType.Read, XsWire.Strings("/max")).Payload.Length);
    }

    [Fact]
    public void RepliesEchoRequestAndTransactionIds()
    {
        var w = Wire.Dom0(_s);
        uint tx = w.Start();
        var (ok, _) = w.SendRaw(XsWire.Build(XsMessageType.Write, 0xdeadbeef, tx, [.. XsWire.Strings("/e"), (byte)'1']));
        Assert.Equal((XsMessageType.Write, 0xdeadbeefu, tx), (ok.Type, ok.ReqId, ok.TxId));
        var (err, p) = w.SendRaw(XsWire.Build(XsMessageType.Read, 77, tx, XsWire.Strings("/none")));
        Assert.Equal((XsMessageType.Error, 77u, tx), (err.Type, err.ReqId, err.TxId));
        Assert.Equal("ENOENT\0"u8.ToArray(), p);
    }

    [Theory]
    [InlineData(20u)]
    [InlineData(27u)]
    [InlineData(15u)]
    [InlineData(16u)]
    [InlineData(0xffffu)]
    [InlineData(12345u)]
    public void UnknownOrServerOnlyTypesAreEnosys(uint type) =>
        Assert.Equal("ENOSYS", Wire.Dom0(_s).Req((XsMessageType)type, 0, "/"));

    [Fact]
    public void MissingNulIsEinval()
    {
        var w = Wire.Dom0(_s);
        Assert.Equal(XsMessageType.Error, w.Send(XsMessageType.Read, "/tool"u8.ToArray()).Header.Type);
        Assert.Equal("EINVAL\0"u8.ToArray(), w.Send(XsMessageType.Read, "/tool"u8.ToArray()).Payload);
        Assert.Equal("EINVAL\0"u8.ToArray(), w.Send(XsMessageType.Write, "/novalue"u8.ToArray()).Payload);
        Assert.Equal("EINVAL\0"u8.ToArray(), w.Send(XsMessageType.Read, XsWire.Strings("/a", "/b")).Payload);
        Assert.Equal("EINVAL\0"u8.ToArray(), w.Send(XsMessageType.Read, []).Payload);
        Assert.Equal("EINVAL\0"u8.ToArray(), w.Send(XsMessageType.Watch, XsWire.Strings("/onlypath")).Payload);
    }

    [Theory]
    [InlineData("/bad path")]
    [InlineData("/trailing/")]
    [InlineData("//double")]
    [InlineData("/star*")]
    public void BadPathsAreEinval(string path)
    {
        var w = Wire.Dom0(_s);
        Assert.Equal("EINVAL", w.Read(path));
        Assert.Equal("EINVAL", w.Write(path, "x"));
        Assert.Equal("EINVAL", w.Watch(path, "t"));
    }

    [Theory]
    [InlineData(XsMessageType.Introduce, new[] { "5", "1", "1" })]
    [InlineData(XsMessageType.Release, new[] { "5" })]
    [InlineData(XsMessageType.SetTarget, new[] { "5", "6" })]
    [InlineData(XsMessageType.IsDomainIntroduced, new[] { "5" })]
    [InlineData(XsMessageType.GetQuota, new string[0])]
    [InlineData(XsMessageType.SetQuota, new[] { "nodes", "5" })]
    [InlineData(XsMessageType.SetFeature, new[] { "5", "0" })]
    [InlineData(XsMessageType.Resume, new[] { "5" })]
    [InlineData(XsMessageType.GetFeature, new[] { "5" })]
    public void PrivilegedOperationsAreEaccesForDomU(XsMessageType type, string[] args) =>
        Assert.Equal("EACCES", Wire.DomU(_s, 3).Req(type, 0, args));

    [Fact]
    public void MessagesMayArriveByteByByte()
    {
        var w = Wire.Dom0(_s);
        var m = XsWire.Build(XsMessageType.Write, 5, 0, [.. XsWire.Strings("/slow"), (byte)'v']);
        foreach (var b in m) w.Conn.Feed([b]);
        Assert.True(w.Conn.TryDequeue(out var reply));
        Assert.Equal(XsMessageType.Write, XsHeader.Parse(reply).Type);
        Assert.Equal("v", w.Read("/slow"));
    }

    [Fact]
    public void SeveralMessagesInOneFeed()
    {
        var w = Wire.Dom0(_s);
        byte[] batch = [.. XsWire.Build(XsMessageType.Write, 1, 0, [.. XsWire.Strings("/b1"), (byte)'1']),
                        .. XsWire.Build(XsMessageType.Read, 2, 0, XsWire.Strings("/b1"))];
        w.Conn.Feed(batch);
        Assert.True(w.Conn.TryDequeue(out var r1));
        Assert.True(w.Conn.TryDequeue(out var r2));
        Assert.Equal(1u, XsHeader.Parse(r1).ReqId);
        Assert.Equal(2u, XsHeader.Parse(r2).ReqId);
        Assert.Equal((byte)'1', r2[XsHeader.Size]);
    }

    [Fact]
    public void HeaderLayoutIsLittleEndian()
    {
        var m = XsWire.Build(XsMessageType.Read, 0x01020304, 0x05060708, "a\0"u8);
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(m));
        Assert.Equal(0x01020304u, BinaryPrimitives.ReadUInt32LittleEndian(m.AsSpan(4)));
        Assert.Equal(0x05060708u, BinaryPrimitives.ReadUInt32LittleEndian(m.AsSpan(8)));
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(m.AsSpan(12)));
    }
}
