namespace XenSharp.Api;
