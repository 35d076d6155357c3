namespace XenSharp.Hypervisor;
