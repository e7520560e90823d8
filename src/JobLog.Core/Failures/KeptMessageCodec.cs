using System.Buffers.Binary;
using System.Text.Json;
using Microsoft.AspNetCore.DataProtection;

namespace JobLog.Failures;

/// <summary>A kept message in clear: its transport headers and body.</summary>
/// <param name="Headers">The transport headers, as text.</param>
/// <param name="Body">The body bytes.</param>
internal sealed record KeptMessageContent(IReadOnlyDictionary<string, string> Headers, byte[] Body);

/// <summary>
/// Protects a kept message's headers and body together with ASP.NET Core Data Protection (keys where the application's
/// Data Protection keys live: the ledger alone cannot read a body).
/// </summary>
internal sealed class KeptMessageCodec(IDataProtectionProvider provider)
{
    /// <summary>The Data Protection purpose of kept messages.</summary>
    public const string Purpose = "JobLog.KeptMessages.v1";

    private readonly IDataProtector _protector = provider.CreateProtector(Purpose);

    public byte[] Protect(KeptMessageContent content)
    {
        var headers = JsonSerializer.SerializeToUtf8Bytes(content.Headers);
        var clear = new byte[4 + headers.Length + content.Body.Length];
        BinaryPrimitives.WriteInt32LittleEndian(clear, headers.Length);
        headers.CopyTo(clear, 4);
        content.Body.CopyTo(clear, 4 + headers.Length);
        return _protector.Protect(clear);
    }

    /// <exception cref="System.Security.Cryptography.CryptographicException">Without the keys it was protected with.</exception>
    public KeptMessageContent Unprotect(byte[] data)
    {
        var clear = _protector.Unprotect(data);
        var length = BinaryPrimitives.ReadInt32LittleEndian(clear);
        var headers = JsonSerializer.Deserialize<Dictionary<string, string>>(clear.AsSpan(4, length)) ?? [];
        return new KeptMessageContent(headers, clear[(4 + length)..]);
    }
}
