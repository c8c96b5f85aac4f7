using System.Reflection;
using PrefPipe.Build;

namespace PrefPipe.Models.Tests.Runtime;

/// <summary>The build step that makes TorchSharp's native wrapper load on Debian 12 / Ubuntu 22.04.</summary>
public sealed class LibStdCxxCompatTests
{
    // Debian 12's libstdc++ (GCC 12.2) defines GLIBCXX_3.4 .. GLIBCXX_3.4.30.
    private static readonly HashSet<string> Gcc12 = Enumerable.Range(0, 31).Select(i => i == 0 ? "GLIBCXX_3.4" : $"GLIBCXX_3.4.{i}").ToHashSet();
    private static readonly HashSet<string> Gcc13 = Gcc12.Concat(["GLIBCXX_3.4.31", "GLIBCXX_3.4.32"]).ToHashSet();

    private static string Metadata(string key) =>
        typeof(LibStdCxxCompatTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;

    private static byte[] Pristine()
    {
        string path = Path.Combine(Metadata("NuGetPackageRoot"), "torchsharp", Metadata("TorchSharpVersion"), "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        return File.ReadAllBytes(path);
    }

    private static string OutputCopy() => Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");

    [Fact]
    public void ReadNeeds_ShippedWrapper_NeedsGlibcxx3432OnlyForTheIostreamMarker()
    {
        var needs = LibStdCxxCompat.ReadNeeds(Pristine());

        var v32 = Assert.Single(needs, n => n.Name == "GLIBCXX_3.4.32");
        Assert.Equal("libstdc++.so.6", v32.File);
        Assert.Equal(["_ZSt21ios_base_library_initv"], v32.Symbols);
    }

    [Fact]
    public void ElfHash_EveryNeedInShippedWrapper_EqualsTheHashTheLinkerStored()
    {
        byte[] elf = Pristine();
        var needs = LibStdCxxCompat.ReadNeeds(elf);

        Assert.True(needs.Count > 10);
        foreach (var need in needs)
            Assert.Equal(BitConverter.ToUInt32(elf, need.AuxOffset), LibStdCxxCompat.ElfHash(need.Name));
    }

    [Fact]
    public void Patch_HostWithGcc12_RenamesOnlyTheMarkerVersionAndKeepsSize()
    {
        byte[] original = Pristine();
        byte[] elf = (byte[])original.Clone();

        var outcome = LibStdCxxCompat.Patch(elf, Gcc12, out string log);

        Assert.Equal(PatchOutcome.Patched, outcome);
        Assert.Contains("GLIBCXX_3.4.32 -> GLIBCXX_3.4.30", log, StringComparison.Ordinal);
        Assert.Equal(original.Length, elf.Length);
        var after = LibStdCxxCompat.ReadNeeds(elf);
        Assert.DoesNotContain(after, n => n.Name == "GLIBCXX_3.4.32");
        Assert.All(after, n => Assert.Equal(BitConverter.ToUInt32(elf, n.AuxOffset), LibStdCxxCompat.ElfHash(n.Name)));
        // Everything but the 14-byte name and the 4-byte hash is untouched.
        int changed = original.Zip(elf).Count(p => p.First != p.Second);
        Assert.InRange(changed, 1, 18);
    }

    [Fact]
    public void Patch_HostWithGcc13_LeavesFileUntouched()
    {
        byte[] original = Pristine();
        byte[] elf = (byte[])original.Clone();

        Assert.Equal(PatchOutcome.NotNeeded, LibStdCxxCompat.Patch(elf, Gcc13, out _));
        Assert.Equal(original, elf);
    }

    [Fact]
    public void Patch_VersionNeededByRealSymbols_RefusesAsUnsafe()
    {
        byte[] elf = Pristine();
        var host = Gcc12.Where(v => v != "GLIBCXX_3.4.30" && v != "GLIBCXX_3.4.29").ToHashSet();
        bool needs30 = LibStdCxxCompat.ReadNeeds(elf).Any(n => n.Name is "GLIBCXX_3.4.30" or "GLIBCXX_3.4.29");
        Assert.True(needs30, "the shipped wrapper needs GLIBCXX_3.4.29 or .30 for real symbols");

        Assert.Equal(PatchOutcome.Unsafe, LibStdCxxCompat.Patch(elf, host, out string log));
        Assert.Contains("install a newer libstdc++", log, StringComparison.Ordinal);
    }

    [Fact]
    public void OutputCopy_OnThisHost_IsPatchedExactlyWhenTheHostLibStdCxxLacksTheVersion()
    {
        string? lib = LibStdCxxCompat.FindHostLibStdCxx();
        Assert.NotNull(lib);
        var host = LibStdCxxCompat.DefinedGlibcxxVersions(File.ReadAllBytes(lib));
        Assert.Contains("GLIBCXX_3.4.29", host);

        bool hostHas = host.Contains("GLIBCXX_3.4.32");
        byte[] copy = File.ReadAllBytes(OutputCopy());
        bool copyNeeds = LibStdCxxCompat.ReadNeeds(copy).Any(n => n.Name == "GLIBCXX_3.4.32");

        Assert.Equal(hostHas, copyNeeds);
        Assert.Equal(hostHas, copy.AsSpan().SequenceEqual(Pristine()));
    }
}
