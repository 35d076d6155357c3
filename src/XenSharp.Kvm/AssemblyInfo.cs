namespace XenSharp.Kvm;
