using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("XenSharp.Kvm.Tests")]

namespace XenSharp.Kvm;
