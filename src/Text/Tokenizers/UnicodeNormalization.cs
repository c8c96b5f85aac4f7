using System.Globalization;
using System.Text;

namespace PrefPipe.Text.Tokenizers;

/// <summary>
/// Unicode normalization forms (NFC, NFD, NFKC, NFKD) from embedded tables. <see cref="string.Normalize()"/> leaves text
/// unchanged when the process runs with InvariantGlobalization (as prefpipe does), so tokenizers that declare an NFC or
/// NFKC normalizer (Qwen2/2.5/3) need this to match HF.
/// </summary>
internal static class UnicodeNormalization
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private static readonly Lazy<Tables> Data = new(Tables.Load);

    public static string Normalize(string text, NormalizationForm form)
    {
        // Text below U+0300 is already NFC; ASCII is invariant under every form.
        char limit = form == NormalizationForm.FormC ? '\u0300' : '\u0080';
        if (text.AsSpan().IndexOfAnyInRange(limit, '\uFFFF') < 0) return text;

        bool compat = form is NormalizationForm.FormKC or NormalizationForm.FormKD;
        var tables = Data.Value;
        var codePoints = new List<int>(text.Length);
        foreach (var rune in text.EnumerateRunes()) Decompose(rune.Value, compat, tables, codePoints);
        ReorderCanonically(codePoints, tables);
        if (form is NormalizationForm.FormC or NormalizationForm.FormKC) Compose(codePoints, tables);
        var sb = new StringBuilder(codePoints.Count);
        foreach (int cp in codePoints) sb.Append(char.ConvertFromUtf32(cp));
        return sb.ToString();
    }

    private static void Decompose(int cp, bool compat, Tables tables, List<int> output)
    {
        if (cp is >= SBase and < SBase + SCount)
        {
            int s = cp - SBase;
            output.Add(LBase + s / NCount);
            output.Add(VBase + s % NCount / TCount);
            if (s % TCount != 0) output.Add(TBase + s % TCount);
            return;
        }
        if (compat && tables.Compatibility.TryGetValue(cp, out var k)) output.AddRange(k);
        else if (tables.Canonical.TryGetValue(cp, out var d)) output.AddRange(d);
        else output.Add(cp);
    }

    private static void ReorderCanonically(List<int> cps, Tables tables)
    {
        // Stable insertion sort of each run of non-starters by combining class.
        for (int i = 1; i < cps.Count; i++)
        {
            int ccc = tables.CombiningClass(cps[i]);
            if (ccc == 0) continue;
            int j = i;
            while (j > 0)
            {
                int before = tables.CombiningClass(cps[j - 1]);
                if (before <= ccc) break;
                (cps[j - 1], cps[j]) = (cps[j], cps[j - 1]);
                j--;
            }
        }
    }

    private static void Compose(List<int> cps, Tables tables)
    {
        int starter = -1; // index (in the output) of the last starter
        int lastClass = 0; // combining class of the last code point written
        int write = 0;
        for (int read = 0; read < cps.Count; read++)
        {
            int cp = cps[read];
            int ccc = tables.CombiningClass(cp);
            bool adjacent = starter == write - 1;
            // Not blocked: nothing between the starter and cp, or everything between has a lower, non-zero class.
            if (starter >= 0 && (adjacent || (lastClass != 0 && lastClass < ccc)))
            {
                int composite = ComposePair(cps[starter], cp, tables);
                if (composite >= 0)
                {
                    cps[starter] = composite;
                    continue;
                }
            }
            if (ccc == 0) starter = write;
            lastClass = ccc;
            cps[write++] = cp;
        }
        cps.RemoveRange(write, cps.Count - write);
    }

    private static int ComposePair(int a, int b, Tables tables)
    {
        if (a is >= LBase and < LBase + LCount && b is >= VBase and < VBase + VCount)
            return SBase + ((a - LBase) * VCount + (b - VBase)) * TCount;
        if (a is >= SBase and < SBase + SCount && (a - SBase) % TCount == 0 && b is > TBase and < TBase + TCount)
            return a + (b - TBase);
        return tables.Compositions.TryGetValue(((long)a << 21) | (uint)b, out int c) ? c : -1;
    }

    private sealed class Tables
    {
        public Dictionary<int, int[]> Canonical { get; } = [];
        public Dictionary<int, int[]> Compatibility { get; } = [];
        public Dictionary<int, byte> Classes { get; } = [];
        public Dictionary<long, int> Compositions { get; } = [];

        public int CombiningClass(int cp) => Classes.TryGetValue(cp, out byte c) ? c : 0;

        public static Tables Load()
        {
            var tables = new Tables();
            using var stream = typeof(UnicodeNormalization).Assembly.GetManifestResourceStream("PrefPipe.Text.Tokenizers.unicode-normalization.txt")
                ?? throw new InvalidOperationException("The embedded Unicode normalization tables are missing from PrefPipe.Text.");
            using var reader = new StreamReader(stream);
            while (reader.ReadLine() is { } line)
            {
                if (line.Length == 0 || line[0] == '#') continue;
                string[] f = line.Split(';');
                int cp = Hex(f[0]);
                if (f[1].Length > 0) tables.Classes[cp] = byte.Parse(f[1], CultureInfo.InvariantCulture);
                int[]? nfd = f[2].Length > 0 ? f[2].Split(' ').Select(Hex).ToArray() : null;
                if (nfd is not null) tables.Canonical[cp] = nfd;
                if (f[3].Length > 0) tables.Compatibility[cp] = f[3].Split(' ').Select(Hex).ToArray();
                else if (nfd is not null) tables.Compatibility[cp] = nfd;
                if (f[4].Length > 0)
                {
                    int[] pair = f[4].Split(' ').Select(Hex).ToArray();
                    tables.Compositions[((long)pair[0] << 21) | (uint)pair[1]] = cp;
                }
            }
            return tables;
        }

        private static int Hex(string s) => int.Parse(s, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
    }
}
