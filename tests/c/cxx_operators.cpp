/*
 * C++'s operator new and delete under libmemtier.so (tests/native/memtier_test.ts).
 *
 * Checks that every form of the global operators resolves to the interposer (dladdr of its
 * address names the library), that blocks keep their contents and alignment, that sized and
 * aligned deletes free what they must, that a failed throwing new runs the new-handler and
 * throws std::bad_alloc, and that a failed nothrow new returns nullptr.
 * Prints "cxx ok N" (N: operators resolved to the library), or why it failed (exit 1).
 */
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <new>

static int failures = 0;

static void expect(bool ok, const char *what)
{
    if (!ok) {
        std::fprintf(stderr, "cxx_operators: check failed: %s\n", what);
        failures++;
    }
}

static bool from_library(const void *fn, const char *library)
{
    Dl_info info;
    return dladdr(fn, &info) != 0 && info.dli_fname != nullptr && std::strstr(info.dli_fname, library) != nullptr;
}

struct alignas(256) Wide {
    unsigned char bytes[300];
};

static int handler_calls = 0;
static void count_and_give_up()
{
    handler_calls++;
    std::set_new_handler(nullptr); // the next failure throws
}

int main(int argc, char **argv)
{
    const char *library = argc > 1 ? argv[1] : "libmemtier";
    using New = void *(*)(std::size_t);
    using NewNothrow = void *(*)(std::size_t, const std::nothrow_t &);
    using NewAligned = void *(*)(std::size_t, std::align_val_t);
    using Delete = void (*)(void *);
    using DeleteSized = void (*)(void *, std::size_t);
    using DeleteAligned = void (*)(void *, std::align_val_t);
    const void *operators[] = {
        reinterpret_cast<const void *>(static_cast<New>(&::operator new)),
        reinterpret_cast<const void *>(static_cast<New>(&::operator new[])),
        reinterpret_cast<const void *>(static_cast<NewNothrow>(&::operator new)),
        reinterpret_cast<const void *>(static_cast<NewAligned>(&::operator new)),
        reinterpret_cast<const void *>(static_cast<Delete>(&::operator delete)),
        reinterpret_cast<const void *>(static_cast<Delete>(&::operator delete[])),
        reinterpret_cast<const void *>(static_cast<DeleteSized>(&::operator delete)),
        reinterpret_cast<const void *>(static_cast<DeleteSized>(&::operator delete[])),
        reinterpret_cast<const void *>(static_cast<DeleteAligned>(&::operator delete)),
    };
    int resolved = 0;
    for (const void *op : operators) resolved += from_library(op, library);

    // Contents and sizes, plain and array forms, sized deletes.
    for (std::size_t size = 1; size < (1u << 22); size = size * 3 + 1) {
        unsigned char *a = new unsigned char[size];
        std::memset(a, 0x5a, size);
        int *one = new int(7);
        expect(a[0] == 0x5a && a[size - 1] == 0x5a && *one == 7, "contents");
        delete one;
        ::operator delete[](a, size);
    }
    // Aligned new (C++17), array and sized aligned delete.
    for (int i = 0; i < 100; i++) {
        Wide *w = new Wide;
        Wide *ws = new Wide[3];
        expect(reinterpret_cast<std::uintptr_t>(w) % 256 == 0, "aligned new");
        expect(reinterpret_cast<std::uintptr_t>(ws) % 256 == 0, "aligned new[]");
        std::memset(w->bytes, 1, sizeof w->bytes);
        delete w;
        delete[] ws;
    }
    // nothrow: a block, or nullptr when it cannot be had.
    void *small = ::operator new(64, std::nothrow);
    expect(small != nullptr, "nothrow new of 64 B");
    ::operator delete(small, std::nothrow);
    void *huge = ::operator new(std::size_t(1) << 62, std::nothrow);
    expect(huge == nullptr, "nothrow new of 2^62 B is nullptr");
    void *huge_aligned = ::operator new[](std::size_t(1) << 62, std::align_val_t(64), std::nothrow);
    expect(huge_aligned == nullptr, "aligned nothrow new[] of 2^62 B is nullptr");
    // Throwing new: the new-handler runs, then std::bad_alloc.
    std::set_new_handler(count_and_give_up);
    bool threw = false;
    try {
        void *p = ::operator new(std::size_t(1) << 62);
        std::printf("unexpected block %p\n", p);
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    expect(threw, "new of 2^62 B throws std::bad_alloc");
    expect(handler_calls == 1, "the new-handler ran once before the throw");
    threw = false;
    try {
        void *p = ::operator new[](std::size_t(1) << 62, std::align_val_t(128));
        std::printf("unexpected block %p\n", p);
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    expect(threw, "aligned new[] of 2^62 B throws std::bad_alloc");
    if (failures != 0) return 1;
    std::printf("cxx ok %d\n", resolved);
    return 0;
}
