// Used twice: compiled into the build by RoslynCodeTaskFactory (build/LibStdCxxCompat.targets) and linked into
// tests/Models.Tests, which define PREFPIPE_NO_MSBUILD_TASK to leave out the MSBuild wrapper at the end of this file.
//
// Why this exists: TorchSharp 0.107.0's libLibTorchSharp.so was linked against GCC 13's libstdc++ and so carries a
// version requirement on GLIBCXX_3.4.32 for exactly one symbol, std::ios_base_library_init, a marker GCC 13 headers
// emit for <iostream> that is never called. Debian 12 (GCC 12) and Ubuntu 22.04 stop at GLIBCXX_3.4.30, so the loader
// refuses the whole library. Renaming that one requirement to an older version of the same length that the host has
// (and fixing the ELF hash next to it) lets the loader accept it; the marker symbol stays unresolved, which is harmless
// because nothing calls it. We only ever patch the copy in the output folder, never the package cache or system files.
#nullable enable
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;

namespace PrefPipe.Build
{
    /// <summary>Outcome of <see cref="LibStdCxxCompat.Patch"/>.</summary>
    public enum PatchOutcome
    {
        /// <summary>Every version the file needs is on the host: the file was not touched.</summary>
        NotNeeded,
        /// <summary>The file was rewritten so it loads on the host.</summary>
        Patched,
        /// <summary>The file needs a version the host lacks for symbols that are really used: not patched.</summary>
        Unsafe,
    }

    /// <summary>Reads and rewrites ELF64 symbol-version requirements (.gnu.version_r) in place.</summary>
    public static class LibStdCxxCompat
    {
        /// <summary>Symbols that may lose their versioned binding: markers that are referenced but never called.</summary>
        public static readonly IReadOnlyCollection<string> MarkerSymbols = new[] { "_ZSt21ios_base_library_initv" };

        private const uint ShtGnuVerneed = 0x6ffffffe;
        private const uint ShtGnuVersym = 0x6fffffff;
        private const uint ShtDynsym = 11;

        /// <summary>One version a library asks of a dependency, e.g. GLIBCXX_3.4.32 from libstdc++.so.6.</summary>
        public sealed class VersionNeed
        {
            internal VersionNeed(string file, string name, int auxOffset, int nameOffset, ushort index)
            {
                File = file; Name = name; AuxOffset = auxOffset; NameOffset = nameOffset; Index = index;
            }
            /// <summary>The needed library (vn_file), e.g. libstdc++.so.6.</summary>
            public string File { get; }
            /// <summary>The version name, e.g. GLIBCXX_3.4.32.</summary>
            public string Name { get; }
            /// <summary>File offset of the Elf64_Vernaux entry.</summary>
            public int AuxOffset { get; }
            /// <summary>File offset of the name in .dynstr.</summary>
            public int NameOffset { get; }
            /// <summary>vna_other: the index .gnu.version uses for symbols bound to this version.</summary>
            public ushort Index { get; }
            /// <summary>Dynamic symbols bound to this version.</summary>
            public List<string> Symbols { get; } = new List<string>();
        }

        /// <summary>Lists the versions an ELF64 little-endian shared object needs, with the symbols bound to each.</summary>
        public static IReadOnlyList<VersionNeed> ReadNeeds(byte[] elf)
        {
            if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
                throw new InvalidDataException("not an ELF file");
            if (elf[4] != 2 || elf[5] != 1)
                throw new InvalidDataException("only ELF64 little-endian is supported");

            long shoff = BitConverter.ToInt64(elf, 0x28);
            int shentsize = BitConverter.ToUInt16(elf, 0x3A);
            int shnum = BitConverter.ToUInt16(elf, 0x3C);
            if (shoff <= 0 || shnum == 0 || shentsize < 64)
                throw new InvalidDataException("the file has no section headers");

            int Sh(int i) => checked((int)shoff + i * shentsize);
            uint Type(int i) => BitConverter.ToUInt32(elf, Sh(i) + 4);
            int Offset(int i) => checked((int)BitConverter.ToInt64(elf, Sh(i) + 24));
            long Size(int i) => BitConverter.ToInt64(elf, Sh(i) + 32);
            int Link(int i) => (int)BitConverter.ToUInt32(elf, Sh(i) + 40);
            int Info(int i) => (int)BitConverter.ToUInt32(elf, Sh(i) + 44);

            int verneed = -1, versym = -1, dynsym = -1;
            for (int i = 0; i < shnum; i++)
            {
                switch (Type(i))
                {
                    case ShtGnuVerneed: verneed = i; break;
                    case ShtGnuVersym: versym = i; break;
                    case ShtDynsym: dynsym = i; break;
                }
            }
            var needs = new List<VersionNeed>();
            if (verneed < 0) return needs;

            int strtab = Offset(Link(verneed));
            string Str(int off)
            {
                int end = off;
                while (elf[end] != 0) end++;
                return Encoding.ASCII.GetString(elf, off, end - off);
            }

            int vn = Offset(verneed);
            for (int n = 0; n < Info(verneed); n++)
            {
                int cnt = BitConverter.ToUInt16(elf, vn + 2);
                string file = Str(strtab + (int)BitConverter.ToUInt32(elf, vn + 4));
                int aux = vn + (int)BitConverter.ToUInt32(elf, vn + 8);
                for (int a = 0; a < cnt; a++)
                {
                    ushort other = BitConverter.ToUInt16(elf, aux + 6);
                    int nameOff = strtab + (int)BitConverter.ToUInt32(elf, aux + 8);
                    needs.Add(new VersionNeed(file, Str(nameOff), aux, nameOff, other));
                    uint nextAux = BitConverter.ToUInt32(elf, aux + 12);
                    if (nextAux == 0) break;
                    aux += (int)nextAux;
                }
                uint next = BitConverter.ToUInt32(elf, vn + 12);
                if (next == 0) break;
                vn += (int)next;
            }

            if (versym >= 0 && dynsym >= 0)
            {
                int symStr = Offset(Link(dynsym));
                int symOff = Offset(dynsym);
                long count = Size(dynsym) / 24; // sizeof(Elf64_Sym)
                int verOff = Offset(versym);
                var byIndex = needs.ToDictionary(x => x.Index);
                for (int s = 0; s < count; s++)
                {
                    int idx = BitConverter.ToUInt16(elf, verOff + s * 2) & 0x7fff;
                    if (byIndex.TryGetValue((ushort)idx, out var need))
                    {
                        int nameIdx = (int)BitConverter.ToUInt32(elf, symOff + s * 24);
                        need.Symbols.Add(Str(symStr + nameIdx));
                    }
                }
            }
            return needs;
        }

        /// <summary>The System V ELF hash that .gnu.version_r stores next to each version name.</summary>
        public static uint ElfHash(string name)
        {
            uint h = 0;
            foreach (char c in name)
            {
                h = (h << 4) + c;
                uint g = h & 0xf0000000;
                if (g != 0) h ^= g >> 24;
                h &= ~g;
            }
            return h;
        }

        /// <summary>The GLIBCXX_* version names a libstdc++ image defines.</summary>
        public static ISet<string> DefinedGlibcxxVersions(byte[] libstdcxx)
        {
            var found = new HashSet<string>(StringComparer.Ordinal);
            byte[] prefix = Encoding.ASCII.GetBytes("GLIBCXX_");
            for (int i = 0; i + prefix.Length < libstdcxx.Length; i++)
            {
                if (libstdcxx[i] != prefix[0] || (i > 0 && libstdcxx[i - 1] != 0)) continue;
                int j = 0;
                while (j < prefix.Length && libstdcxx[i + j] == prefix[j]) j++;
                if (j < prefix.Length) continue;
                int end = i + j;
                while (end < libstdcxx.Length && (char.IsDigit((char)libstdcxx[end]) || libstdcxx[end] == (byte)'.')) end++;
                if (end < libstdcxx.Length && libstdcxx[end] == 0 && end > i + j)
                    found.Add(Encoding.ASCII.GetString(libstdcxx, i, end - i));
            }
            return found;
        }

        /// <summary>
        /// Rewrites, in <paramref name="elf"/>, each libstdc++ version requirement the host lacks whose symbols are all
        /// <see cref="MarkerSymbols"/>, to the newest version of the same name length that the host has and the file
        /// already needs. Returns what was done and, in <paramref name="log"/>, why.
        /// </summary>
        public static PatchOutcome Patch(byte[] elf, ISet<string> hostVersions, out string log)
        {
            var needs = ReadNeeds(elf).Where(n => n.Name.StartsWith("GLIBCXX_", StringComparison.Ordinal)).ToList();
            var missing = needs.Where(n => !hostVersions.Contains(n.Name)).ToList();
            if (missing.Count == 0)
            {
                log = "the host libstdc++ has every GLIBCXX version the file needs";
                return PatchOutcome.NotNeeded;
            }
            var messages = new List<string>();
            foreach (var need in missing)
            {
                var used = need.Symbols.Where(s => !MarkerSymbols.Contains(s)).ToList();
                if (used.Count > 0)
                {
                    log = $"{need.Name} is needed by symbols that are called ({string.Join(", ", used.Take(5))}); " +
                          "install a newer libstdc++ (GCC 13+) instead";
                    return PatchOutcome.Unsafe;
                }
                string? replacement = needs
                    .Where(n => n.Name.Length == need.Name.Length && hostVersions.Contains(n.Name))
                    .Select(n => n.Name)
                    .OrderByDescending(n => n, VersionComparer.Instance)
                    .FirstOrDefault();
                if (replacement is null)
                {
                    log = $"no GLIBCXX version of the same length as {need.Name} is both needed by the file and on the host";
                    return PatchOutcome.Unsafe;
                }
                Encoding.ASCII.GetBytes(replacement).CopyTo(elf, need.NameOffset);
                BitConverter.GetBytes(ElfHash(replacement)).CopyTo(elf, need.AuxOffset);
                messages.Add($"{need.Name} -> {replacement} (only {string.Join(", ", need.Symbols)} used it)");
            }
            log = string.Join("; ", messages);
            return PatchOutcome.Patched;
        }

        /// <summary>Finds the libstdc++.so.6 this process loaded (so the one the app will load), else the usual paths.</summary>
        public static string? FindHostLibStdCxx()
        {
            try
            {
                if (File.Exists("/proc/self/maps"))
                {
                    foreach (var line in File.ReadLines("/proc/self/maps"))
                    {
                        int slash = line.IndexOf('/');
                        if (slash >= 0 && line.IndexOf("libstdc++.so", slash, StringComparison.Ordinal) >= 0)
                            return line.Substring(slash).Trim();
                    }
                }
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            foreach (var p in new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/libstdc++.so.6" })
                if (File.Exists(p)) return p;
            return null;
        }

        private sealed class VersionComparer : IComparer<string>
        {
            public static readonly VersionComparer Instance = new VersionComparer();
            public int Compare(string? x, string? y)
            {
                int[] Parts(string? s) => (s ?? "").Substring((s ?? "").IndexOf('_') + 1).Split('.').Select(p => int.TryParse(p, out var v) ? v : 0).ToArray();
                var a = Parts(x); var b = Parts(y);
                for (int i = 0; i < Math.Max(a.Length, b.Length); i++)
                {
                    int c = (i < a.Length ? a[i] : 0).CompareTo(i < b.Length ? b[i] : 0);
                    if (c != 0) return c;
                }
                return 0;
            }
        }
    }
}

#if !PREFPIPE_NO_MSBUILD_TASK
namespace PrefPipe.Build
{
    /// <summary>MSBuild task: makes the copied libLibTorchSharp.so load on hosts with an older libstdc++.</summary>
    public sealed class PatchLibTorchSharp : Microsoft.Build.Utilities.Task
    {
        /// <summary>The copies to check (in the output or publish folder).</summary>
        [Microsoft.Build.Framework.Required]
        public Microsoft.Build.Framework.ITaskItem[] Files { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();

        /// <summary>auto (patch when the host lacks a needed version), always, or never.</summary>
        public string Mode { get; set; } = "auto";

        /// <inheritdoc />
        public override bool Execute()
        {
            if (string.Equals(Mode, "never", StringComparison.OrdinalIgnoreCase)) return true;
            ISet<string> host;
            if (string.Equals(Mode, "always", StringComparison.OrdinalIgnoreCase))
            {
                // Pretend the host is Debian 12's libstdc++ (GCC 12): GLIBCXX_3.4 .. 3.4.30.
                host = new HashSet<string>(Enumerable.Range(0, 31).Select(i => i == 0 ? "GLIBCXX_3.4" : "GLIBCXX_3.4." + i));
            }
            else
            {
                var lib = LibStdCxxCompat.FindHostLibStdCxx();
                if (lib is null)
                {
                    Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Normal, "PatchLibTorchSharp: no libstdc++.so.6 found on this host; nothing to do");
                    return true;
                }
                host = LibStdCxxCompat.DefinedGlibcxxVersions(File.ReadAllBytes(lib));
            }
            foreach (var item in Files)
            {
                string path = item.ItemSpec;
                if (!File.Exists(path)) continue;
                byte[] elf = File.ReadAllBytes(path);
                var outcome = LibStdCxxCompat.Patch(elf, host, out string why);
                switch (outcome)
                {
                    case PatchOutcome.Patched:
                        // Write beside, then rename over: a half-written .so is never left behind, and the copy in
                        // the output folder may be a hard link to the package cache, which must stay pristine.
                        string tmp = path + ".patching";
                        File.WriteAllBytes(tmp, elf);
                        File.Replace(tmp, path, destinationBackupFileName: null);
                        Log.LogMessage(Microsoft.Build.Framework.MessageImportance.High, $"PatchLibTorchSharp: {path}: {why}");
                        break;
                    case PatchOutcome.Unsafe:
                        Log.LogWarning($"PatchLibTorchSharp: {path} will not load on this host: {why}");
                        break;
                    default:
                        Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low, $"PatchLibTorchSharp: {path}: {why}");
                        break;
                }
            }
            return !Log.HasLoggedErrors;
        }
    }
}
#endif
