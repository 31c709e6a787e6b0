/* PoCL miscompile behind the OpenMM 8.6 minimiser segfault on an OpenCL CPU device.
 * The kernel is valid OpenCL C (the barrier sits under a work-group-uniform branch on a
 * kernel argument), reduced from OpenMM's getScale (platforms/common/src/kernels/minimize.cc).
 * PoCL 3.1 + LLVM 15 (Debian 12 pocl-opencl-icd) compiles the final loop without its exit
 * test: it writes alpha[i] for i = lid, lid + 64, ... until it faults.
 *   gcc repro.c -o repro -lOpenCL && ./repro        -> Segmentation fault
 *   POCL_EXTRA_BUILD_FLAGS=-cl-opt-disable ./repro  -> ok */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdio.h>

static const char* SRC =
    "__kernel void k(__global double* alpha, __global double* scale, __global const double* g, const int large) {\n"
    "    __local double temp[64];\n"
    "    if (!large) {\n"
    "        temp[get_local_id(0)] = g[get_global_id(0)];\n"
    "        barrier(CLK_LOCAL_MEM_FENCE);\n"
    "        if (get_local_id(0) == 0) scale[0] = temp[1];\n"
    "    }\n"
    "    for (int i = get_local_id(0); i <= 6; i += 64) alpha[i] = 0;\n"
    "}\n";

int main(void) {
    cl_platform_id p; cl_device_id d; cl_int e; int large = 0;
    size_t global = 1792, local = 64;
    static double host[1792];
    clGetPlatformIDs(1, &p, NULL);
    clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, &d, NULL);
    cl_context c = clCreateContext(NULL, 1, &d, NULL, NULL, &e);
    cl_command_queue q = clCreateCommandQueue(c, d, 0, &e);
    cl_program prog = clCreateProgramWithSource(c, 1, &SRC, NULL, &e);
    if (clBuildProgram(prog, 1, &d, "", NULL, NULL) != CL_SUCCESS) { puts("build failed"); return 1; }
    cl_kernel k = clCreateKernel(prog, "k", &e);
    cl_mem alpha = clCreateBuffer(c, CL_MEM_READ_WRITE, 7 * sizeof(double), NULL, &e);
    cl_mem scale = clCreateBuffer(c, CL_MEM_READ_WRITE, sizeof(double), NULL, &e);
    cl_mem g = clCreateBuffer(c, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof host, host, &e);
    clSetKernelArg(k, 0, sizeof(cl_mem), &alpha);
    clSetKernelArg(k, 1, sizeof(cl_mem), &scale);
    clSetKernelArg(k, 2, sizeof(cl_mem), &g);
    clSetKernelArg(k, 3, sizeof(int), &large);
    clEnqueueNDRangeKernel(q, k, 1, NULL, &global, &local, 0, NULL, NULL);
    clFinish(q);
    puts("ok: the kernel ran");
    return 0;
}
