using System.Buffers.Binary;
using System.Text;

namespace PrefPipe.Trainer.Tests.Logging;

/// <summary>One scalar of a TensorBoard event file.</summary>
internal sealed record TfScalar(long Step, string Tag, float Value, double WallTime);

/// <summary>What a TensorBoard event file holds: its file_version record and its scalars, in order.</summary>
internal sealed record TfEventFile(string FileVersion, double FileVersionWallTime, IReadOnlyList<TfScalar> Scalars);

/// <summary>
/// Reads TensorBoard event files as TensorBoard does, independently of the writer: TFRecord frames (uint64 length,
/// masked CRC-32C of the length, data, masked CRC-32C of the data; every CRC checked with a table-driven CRC-32C) and the
/// tensorflow.Event protobuf fields for scalars (wall_time 1, step 2, file_version 3, summary 5 → value 1 → tag 1,
/// simple_value 2). Unknown fields are skipped by wire type.
/// </summary>
internal static class TfEventReader
{
    private static readonly uint[] Table = Enumerable.Range(0, 256).Select(i =>
    {
        uint c = (uint)i;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0x82F63B78u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (byte b in data) c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }

    private static uint Masked(ReadOnlySpan<byte> data)
    {
        uint c = Crc32C(data);
        return ((c >> 15) | (c << 17)) + 0xa282ead8u;
    }

    public static TfEventFile Read(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        var scalars = new List<TfScalar>();
        string? version = null;
        double versionTime = 0;
        int at = 0, record = 0;
        while (at < bytes.Length)
        {
            if (bytes.Length - at < 12) throw new InvalidDataException($"{path}: record {record}: truncated header");
            ulong length = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(at));
            if (BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 8)) != Masked(bytes.AsSpan(at, 8)))
                throw new InvalidDataException($"{path}: record {record}: length CRC mismatch");
            at += 12;
            if ((ulong)(bytes.Length - at) < length + 4) throw new InvalidDataException($"{path}: record {record}: truncated data");
            var data = bytes.AsSpan(at, (int)length);
            if (BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + (int)length)) != Masked(data))
                throw new InvalidDataException($"{path}: record {record}: data CRC mismatch");
            at += (int)length + 4;

            double wall = 0;
            long step = 0;
            string? fileVersion = null;
            var values = new List<(string Tag, float Value)>();
            foreach (var (field, wire, payload, number) in Fields(data.ToArray()))
            {
                if (field == 1 && wire == 1) wall = BitConverter.Int64BitsToDouble((long)number);
                else if (field == 2 && wire == 0) step = (long)number;
                else if (field == 3 && wire == 2) fileVersion = Encoding.UTF8.GetString(payload);
                else if (field == 5 && wire == 2)
                    foreach (var (vf, vw, value, _) in Fields(payload))
                        if (vf == 1 && vw == 2)
                        {
                            string tag = "";
                            float simple = float.NaN;
                            foreach (var (f, w, p, n) in Fields(value))
                            {
                                if (f == 1 && w == 2) tag = Encoding.UTF8.GetString(p);
                                else if (f == 2 && w == 5) simple = BitConverter.Int32BitsToSingle((int)n);
                            }
                            values.Add((tag, simple));
                        }
            }
            if (record == 0)
            {
                version = fileVersion ?? throw new InvalidDataException($"{path}: the first record has no file_version");
                versionTime = wall;
            }
            scalars.AddRange(values.Select(v => new TfScalar(step, v.Tag, v.Value, wall)));
            record++;
        }
        return new TfEventFile(version ?? throw new InvalidDataException($"{path}: empty"), versionTime, scalars);
    }

    /// <summary>Protobuf fields: (field number, wire type, bytes for length-delimited, the number for varint/fixed).</summary>
    private static IEnumerable<(int Field, int Wire, byte[] Payload, ulong Number)> Fields(byte[] message)
    {
        int at = 0;
        while (at < message.Length)
        {
            ulong key = Varint(message, ref at);
            int field = (int)(key >> 3), wire = (int)(key & 7);
            switch (wire)
            {
                case 0: yield return (field, wire, [], Varint(message, ref at)); break;
                case 1: yield return (field, wire, [], BinaryPrimitives.ReadUInt64LittleEndian(message.AsSpan(at))); at += 8; break;
                case 5: yield return (field, wire, [], BinaryPrimitives.ReadUInt32LittleEndian(message.AsSpan(at))); at += 4; break;
                case 2:
                    int length = (int)Varint(message, ref at);
                    yield return (field, wire, message[at..(at + length)], 0);
                    at += length;
                    break;
                default: throw new InvalidDataException($"wire type {wire} at byte {at}");
            }
        }
    }

    private static ulong Varint(byte[] bytes, ref int at)
    {
        ulong v = 0;
        for (int shift = 0; ; shift += 7)
        {
            byte b = bytes[at++];
            v |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return v;
        }
    }
}
