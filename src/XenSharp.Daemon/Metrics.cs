using XenSharp.Api;
using System.Globalization;
using System.Text;

namespace XenSharp.Daemon;

/// <summary>The host's and each domain's figures in Prometheus's text exposition format.</summary>
public static class Metrics
{
    public static string Render(Toolstack.Toolstack toolstack)
    {
        var hv = toolstack.Hypervisor;
        var sb = new StringBuilder();
        void Metric(string name, string type, string help)
        {
            sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
            sb.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
        }
        void Sample(string name, string labels, double value) =>
            sb.Append(name).Append(labels.Length > 0 ? "{" + labels + "}" : "").Append(' ').Append(value.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
        static string L(Hypervisor.Domain d) => $"domain=\"{d.Name.Replace("\\", "\\\\").Replace("\"", "\\\"")}\",domid=\"{d.Id}\"";

        Metric("xensharp_host_memory_bytes", "gauge", "Memory available to domains (host RAM less the host reservation).");
        Sample("xensharp_host_memory_bytes", "", hv.HostMemory.TotalBytes);
        Metric("xensharp_host_free_memory_bytes", "gauge", "Memory not reserved by any domain.");
        Sample("xensharp_host_free_memory_bytes", "", hv.HostMemory.FreeBytes);
        var domains = hv.Domains;
        Metric("xensharp_domain_cpu_seconds_total", "counter", "CPU time consumed by the domain's vCPUs.");
        foreach (var d in domains) Sample("xensharp_domain_cpu_seconds_total", L(d), d.CpuTime.TotalSeconds);
        Metric("xensharp_domain_memory_target_bytes", "gauge", "The domain's memory target.");
        foreach (var d in domains) Sample("xensharp_domain_memory_target_bytes", L(d), d.TargetBytes);
        Metric("xensharp_domain_memory_max_bytes", "gauge", "The domain's maximum memory.");
        foreach (var d in domains) Sample("xensharp_domain_memory_max_bytes", L(d), d.MaxBytes);
        Metric("xensharp_domain_vcpus", "gauge", "vCPUs online.");
        foreach (var d in domains) Sample("xensharp_domain_vcpus", L(d), d.Vcpus.Count(v => v.Online));
        Metric("xensharp_domain_vcpu_exits_total", "counter", "Exits from guest execution, all vCPUs.");
        foreach (var d in domains) Sample("xensharp_domain_vcpu_exits_total", L(d), d.Vcpus.Sum(v => v.ExitCount));
        var stats = DomainStatsReader.Read(toolstack, domains);
        Metric("xensharp_domain_memory_allocated_bytes", "gauge", "Host memory the domain's RAM holds (memfd st_blocks); falls when the guest balloons out.");
        foreach (var (d, s) in domains.Zip(stats)) Sample("xensharp_domain_memory_allocated_bytes", L(d), s.AllocatedBytes);
        // Per device: vifs in the guest's direction (tx: sent by the guest), vbds in bytes and requests.
        string Dev(Hypervisor.Domain d, DeviceStats x) => $"{L(d)},devid=\"{x.DevId}\"";
        void PerDevice(string name, string kind, string help, Func<DeviceStats, long> value)
        {
            Metric(name, "counter", help);
            foreach (var (d, s) in domains.Zip(stats))
                foreach (var x in s.Devices.Where(x => x.Kind == kind)) Sample(name, Dev(d, x), value(x));
        }
        PerDevice("xensharp_domain_net_tx_bytes_total", "vif", "Bytes the guest sent on the vif.", x => x.WriteBytes);
        PerDevice("xensharp_domain_net_rx_bytes_total", "vif", "Bytes delivered to the guest on the vif.", x => x.ReadBytes);
        PerDevice("xensharp_domain_net_tx_packets_total", "vif", "Frames the guest sent on the vif.", x => x.WriteOps);
        PerDevice("xensharp_domain_net_rx_packets_total", "vif", "Frames delivered to the guest on the vif.", x => x.ReadOps);
        PerDevice("xensharp_domain_vbd_read_bytes_total", "vbd", "Bytes read through the vbd.", x => x.ReadBytes);
        PerDevice("xensharp_domain_vbd_write_bytes_total", "vbd", "Bytes written through the vbd.", x => x.WriteBytes);
        PerDevice("xensharp_domain_vbd_read_requests_total", "vbd", "Read requests on the vbd.", x => x.ReadOps);
        PerDevice("xensharp_domain_vbd_write_requests_total", "vbd", "Write requests on the vbd.", x => x.WriteOps);
        Metric("xensharp_domain_running", "gauge", "1 while the domain has not shut down.");
        foreach (var d in domains) Sample("xensharp_domain_running", L(d), d.ShutdownReason is null ? 1 : 0);
        return sb.ToString();
    }
}
