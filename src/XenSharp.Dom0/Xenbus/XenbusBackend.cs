using System.Globalization;
using XenSharp.Dom0.Xenstore;

namespace XenSharp.Dom0.Xenbus;

/// <summary>enum xenbus_state of xen/include/public/io/xenbus.h.</summary>
public enum XenbusState
{
    Unknown = 0,
    Initialising = 1,
    InitWait = 2,
    Initialised = 3,
    Connected = 4,
    Closing = 5,
    Closed = 6,
    Reconfiguring = 7,
    Reconfigured = 8,
}

/// <summary>A frontend value that a backend refuses: the device goes to Closed with an error node.</summary>
public sealed class XenbusProtocolException(string message) : Exception(message);

/// <summary>
/// The backend half of the xenbus handshake for one device: creates the frontend and backend directories the
/// way a toolstack does, watches the frontend's <c>state</c> and drives the backend state machine
/// (InitWait → Connected → Closing → Closed → InitWait). The device-specific part (<see cref="Connect"/>,
/// <see cref="Disconnect"/>) reads the frontend's ring details and starts or stops the I/O.
/// </summary>
public abstract class XenbusBackend : IDisposable
{
    private readonly object _lock = new();
    private IDisposable? _watch;
    private bool _connected, _disposed, _offline;

    protected XenbusBackend(XenstoreClient xs, uint frontendDomid, string type, uint devid)
    {
        Xs = xs;
        FrontendDomid = frontendDomid;
        Type = type;
        DevId = devid;
        FrontendPath = $"/local/domain/{frontendDomid}/device/{type}/{devid}";
        BackendPath = $"/local/domain/0/backend/{type}/{frontendDomid}/{devid}";
    }

    public XenstoreClient Xs { get; }
    public uint FrontendDomid { get; }
    public string Type { get; }
    public uint DevId { get; }
    public string FrontendPath { get; }
    public string BackendPath { get; }
    /// <summary>Last reason the device was closed for a bad frontend value (also in the backend's <c>error</c> node).</summary>
    public string? LastError { get; private set; }
    public XenbusState State { get; private set; } = XenbusState.Initialising;
    public bool IsConnected { get { lock (_lock) return _connected; } }
    public Action<string>? Log { get; set; }

    /// <summary>Device-specific keys for the frontend directory (beside backend, backend-id, state).</summary>
    protected virtual IEnumerable<(string Key, string Value)> FrontendKeys() => [];
    /// <summary>Device-specific keys for the backend directory, written by the toolstack part (params, mode, mac, ...).</summary>
    protected virtual IEnumerable<(string Key, string Value)> BackendKeys() => [];
    /// <summary>Feature keys the backend driver advertises before InitWait.</summary>
    protected virtual IEnumerable<(string Key, string Value)> FeatureKeys() => [];
    /// <summary>Reads the frontend's ring references and starts I/O; throw <see cref="XenbusProtocolException"/> for bad values.</summary>
    protected abstract void Connect();
    /// <summary>Stops I/O and releases the ring and event channel. Must be idempotent.</summary>
    protected abstract void Disconnect();
    /// <summary>Keys written to the backend just before Connected (sectors, info, ...).</summary>
    protected virtual IEnumerable<(string Key, string Value)> ConnectKeys() => [];

    /// <summary>Creates both directories and starts watching the frontend.</summary>
    public void Start()
    {
        string d = FrontendDomid.ToString(CultureInfo.InvariantCulture);
        Xs.Transaction(tx =>
        {
            Xs.Mkdir(FrontendPath, tx);
            Xs.SetPerms(FrontendPath, [new XsPermission(FrontendDomid, XsAccess.None), new XsPermission(0, XsAccess.Read)], tx);
            Xs.Write(FrontendPath + "/backend", BackendPath, tx);
            Xs.Write(FrontendPath + "/backend-id", "0", tx);
            Xs.Write(FrontendPath + "/state", ((int)XenbusState.Initialising).ToString(CultureInfo.InvariantCulture), tx);
            foreach (var (k, v) in FrontendKeys()) Xs.Write(FrontendPath + "/" + k, v, tx);

            Xs.Mkdir(BackendPath, tx);
            Xs.SetPerms(BackendPath, [new XsPermission(0, XsAccess.None), new XsPermission(FrontendDomid, XsAccess.Read)], tx);
            Xs.Write(BackendPath + "/frontend", FrontendPath, tx);
            Xs.Write(BackendPath + "/frontend-id", d, tx);
            Xs.Write(BackendPath + "/online", "1", tx);
            Xs.Write(BackendPath + "/state", ((int)XenbusState.Initialising).ToString(CultureInfo.InvariantCulture), tx);
            foreach (var (k, v) in BackendKeys()) Xs.Write(BackendPath + "/" + k, v, tx);
        });
        // Backend driver probe: advertise features, then InitWait.
        foreach (var (k, v) in FeatureKeys()) Xs.Write(BackendPath + "/" + k, v);
        // Watch before announcing InitWait: a frontend that reacts to InitWait at once must not be missed.
        _watch = Xs.Watch(FrontendPath + "/state", _ => OnFrontendChanged());
        SetState(XenbusState.InitWait);
    }

    private void SetState(XenbusState s)
    {
        State = s;
        try { Xs.Write(BackendPath + "/state", ((int)s).ToString(CultureInfo.InvariantCulture)); }
        catch (XenstoreException e) { Log?.Invoke($"{BackendPath}: cannot write state: {e.Message}"); }
    }

    /// <summary>The frontend's state, or Unknown when missing or not a number.</summary>
    public XenbusState ReadFrontendState()
    {
        string? s = Xs.TryRead(FrontendPath + "/state");
        return s is not null && int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v is >= 0 and <= 8
            ? (XenbusState)v : XenbusState.Unknown;
    }

    /// <summary>Re-evaluates the handshake (runs on the xenstore watch thread).</summary>
    protected void OnFrontendChanged()
    {
        lock (_lock)
        {
            if (_disposed) return;
            var fe = ReadFrontendState();
            try
            {
                switch (fe)
                {
                    case XenbusState.Initialised:
                    case XenbusState.Connected:
                        if (_connected || _offline || State == XenbusState.Closed) break;
                        try
                        {
                            Connect();
                            _connected = true;
                            foreach (var (k, v) in ConnectKeys()) Xs.Write(BackendPath + "/" + k, v);
                            SetState(XenbusState.Connected);
                        }
                        catch (Exception e) when (e is XenbusProtocolException or FormatException or OverflowException
                                                      or XenSharp.Hypervisor.Pv.GrantException or XenSharp.Hypervisor.Pv.EventChannelException)
                        {
                            Fail(e.Message);
                        }
                        break;
                    case XenbusState.Closing:
                        DoDisconnect();
                        SetState(XenbusState.Closing);
                        break;
                    case XenbusState.Closed:
                    case XenbusState.Unknown:
                        DoDisconnect();
                        if (State != XenbusState.Closed) SetState(XenbusState.Closed);
                        break;
                    case XenbusState.Initialising:
                    case XenbusState.InitWait:
                        // The frontend (re)starts: get ready for a new connection.
                        if (!_offline && State is XenbusState.Closed or XenbusState.Closing or XenbusState.Connected)
                        {
                            DoDisconnect();
                            try { Xs.Rm(BackendPath + "/error"); } catch (XenstoreException) { }
                            LastError = null;
                            SetState(XenbusState.InitWait);
                        }
                        break;
                }
            }
            catch (XenstoreException e) { Log?.Invoke($"{BackendPath}: xenstore: {e.Message}"); }
        }
    }

    /// <summary>Disconnects and closes the device with an error node (bad frontend values, ring overrun).</summary>
    protected void Fail(string reason)
    {
        lock (_lock)
        {
            LastError = reason;
            Log?.Invoke($"{BackendPath}: {reason}");
            DoDisconnect();
            try { Xs.Write(BackendPath + "/error", reason); } catch (XenstoreException) { }
            SetState(XenbusState.Closed);
        }
    }

    /// <summary>Called by a worker that found the frontend misbehaving; runs the close off the worker thread.</summary>
    protected void FailAsync(string reason) => ThreadPool.QueueUserWorkItem(_ => Fail(reason));

    private void DoDisconnect()
    {
        if (!_connected) { Disconnect(); return; }
        _connected = false;
        Disconnect();
    }

    /// <summary>Reads a required frontend key as an unsigned 32-bit number.</summary>
    protected uint ReadFrontendUInt(string key)
    {
        string? s = Xs.TryRead(FrontendPath + "/" + key) ?? throw new XenbusProtocolException($"frontend {key} missing");
        if (!uint.TryParse(s.Trim('\0'), NumberStyles.None, CultureInfo.InvariantCulture, out uint v))
            throw new XenbusProtocolException($"frontend {key} \"{Truncate(s)}\" is not a 32-bit number");
        return v;
    }

    protected string? ReadFrontend(string key) => Xs.TryRead(FrontendPath + "/" + key);

    private static string Truncate(string s) => s.Length <= 32 ? s : s[..32] + "...";

    /// <summary>
    /// Graceful detach, as libxl does it: online = 0 and backend state Closing, then wait for the frontend to close
    /// (the backend follows it to Closed) for at most <paramref name="timeout"/>; then <see cref="Dispose"/>.
    /// False when the frontend did not close in time (the device was removed anyway).
    /// </summary>
    public bool Close(TimeSpan timeout)
    {
        lock (_lock)
        {
            if (_disposed) return true;
            _offline = true;
            try { Xs.Write(BackendPath + "/online", "0"); } catch (XenstoreException) { }
            if (State != XenbusState.Closed) SetState(XenbusState.Closing);
        }
        var fe = ReadFrontendState();
        bool done = State == XenbusState.Closed || fe is XenbusState.Closed or XenbusState.Unknown or XenbusState.Initialising or XenbusState.InitWait;
        long end = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (!done && Environment.TickCount64 < end)
        {
            Thread.Sleep(10);
            done = State == XenbusState.Closed || ReadFrontendState() is XenbusState.Closed or XenbusState.Unknown;
        }
        Dispose();
        return done;
    }

    /// <summary>Detach: disconnect, stop watching and remove both directories.</summary>
    public virtual void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            _watch?.Dispose();
            DoDisconnect();
        }
        try { Xs.Rm(FrontendPath); } catch (XenstoreException) { }
        try { Xs.Rm(BackendPath); } catch (XenstoreException) { }
        GC.SuppressFinalize(this);
    }
}
