namespace XenSharp.Dom0;
