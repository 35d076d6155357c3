using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("XenSharp.Emu.Tests")]
