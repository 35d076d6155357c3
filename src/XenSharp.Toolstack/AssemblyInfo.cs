namespace XenSharp.Toolstack;
