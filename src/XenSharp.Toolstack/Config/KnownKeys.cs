namespace XenSharp.Toolstack.Config;

/// <summary>
/// Top-level keys that xl understands (xl.cfg(5) and what xl's parser reads). A known key that
/// XenSharp does not model is accepted with a note and kept verbatim; anything else is a warning.
/// </summary>
public static class XlCfgKnownKeys
{
    /// <summary>Keys turned into typed fields of <see cref="DomainConfig"/>.</summary>
    public static readonly IReadOnlySet<string> Modelled = new HashSet<string>(StringComparer.Ordinal)
    {
        "name", "type", "builder", "memory", "maxmem", "vcpus", "maxvcpus", "cpus", "cpus_soft",
        "cpu_weight", "cap", "kernel", "ramdisk", "cmdline", "root", "extra", "on_poweroff", "on_reboot",
        "on_crash", "on_watchdog", "on_soft_reset", "uuid", "disk", "vif", "serial", "vnc", "vnclisten",
        "vncpasswd", "vncdisplay", "vncunused", "vfb", "localtime", "bootloader", "seclabel", "pool",
    };

    /// <summary>Every key xl accepts, modelled or not.</summary>
    public static readonly IReadOnlySet<string> All = new HashSet<string>(
        Modelled.Concat(
        [
            "acpi", "acpi_firmware", "acpi_laptop_slate", "acpi_s3", "acpi_s4", "altp2m", "altp2m_count", "altp2mhvm",
            "apic", "arm_sci", "bios", "bios_path_override", "boot", "bootloader_args", "bootloader_restrict",
            "bootloader_user", "channel", "cpuid", "device_model", "device_model_args", "device_model_args_hvm",
            "device_model_args_pv", "device_model_override", "device_model_stubdomain_override",
            "device_model_stubdomain_seclabel", "device_model_user", "device_model_version", "device_tree", "display",
            "dm_restrict", "driver_domain", "dtdev", "e820_host", "extratime", "firmware", "firmware_override",
            "gfx_passthru", "gic_version", "hap", "hdtype", "hpet", "hvm_pirq", "init_seclabel", "iomem", "ioports",
            "irqs", "keymap", "latency", "llc_colors", "max_event_channels", "max_grant_frames", "max_grant_version",
            "max_maptrack_frames", "mca_caps", "mmio_hole", "ms_vm_genid", "msr_relaxed", "nestedhvm", "nographic",
            "nomigrate", "nr_spis", "nx", "oos", "opengl", "p9", "pae", "passthrough", "pci", "pci_msitranslate",
            "pci_permissive", "pci_power_mgmt", "pci_seize", "period", "pvcalls", "pvshim", "pvshim_cmdline",
            "pvshim_extra", "pvshim_path", "rdm", "rdm_mem_boundary", "rtc_timeoffset", "sdl", "shadow_memory", "slice",
            "smbios", "smbios_firmware", "soundhw", "spice", "spice_clipboard_sharing", "spice_image_compression",
            "spice_streaming_video", "spiceagent_mouse", "spicedisable_ticketing", "spicehost", "spicepasswd",
            "spiceport", "spicetls_port", "spiceusbredirection", "spicevdagent", "stdvga", "stubdomain_cmdline",
            "stubdomain_kernel", "stubdomain_memory", "stubdomain_ramdisk", "sve", "tee", "timer_mode",
            "trap_unmapped_accesses", "tsc_mode", "usb", "usbctrl", "usbdev", "usbdevice", "usbversion", "vdispl",
            "vendor_device", "vga", "videoram", "vif2", "viridian", "virtio", "vkb", "vkb_device", "vmtrace_buf_kb",
            "vncviewer", "vnuma", "vpmu", "vpt_align", "vsnd", "vtpm", "vuart", "xauthority", "xen_platform_pci",
            "xen_platform_pci_bar_uc", "xend_suspend_evtchn_compat", "xenstore_feature_mask", "xenstore_quota",
        ]), StringComparer.Ordinal);

    public static bool IsKnown(string key) => All.Contains(key);
}
